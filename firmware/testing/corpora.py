"""The evaluation corpora the benchmarks report on, by name or path.

- ``calibration``: the held-out calibration calls (tools/render_calibration.py, rendered into
  ``models/.cache/calibration``): every threshold, model and rule is chosen on these.
- ``dev``: ``../shared/corpus/dev`` (espeak-ng voices) and ``dev-kokoro``: the same scripts in
  natural voices. These only confirm a choice.

Any other directory holding ``calls/*.json`` + ``.wav`` in the dev layout is named by its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
SHARED = REPO.parent / "shared" / "corpus"
KNOWN: dict[str, Path] = {
    "calibration": REPO / "models" / ".cache" / "calibration",
    "dev": SHARED / "dev",
    "dev-kokoro": SHARED / "dev-kokoro",
}


@dataclass(frozen=True)
class Corpus:
    name: str
    root: Path

    @property
    def calls(self) -> list[Path]:
        """The calls' truth JSONs that have their WAV beside them, sorted (under ``calls/``, or in
        the folder itself for a flat one such as ``dev-kokoro/edge``)."""
        folder = self.root / "calls" if (self.root / "calls").is_dir() else self.root
        return [p for p in sorted(folder.glob("*.json")) if p.with_suffix(".wav").is_file()]


def resolve(spec: str | Path) -> Corpus:
    """A known name or a directory; raises ValueError with the reason when it holds no calls."""
    text = str(spec)
    root = KNOWN.get(text, Path(text))
    name = text if text in KNOWN else root.name
    corpus = Corpus(name, root)
    if not corpus.calls:
        raise ValueError(f"no calls under {root / 'calls'}" + (" (render them: tools/render_calibration.py)" if name == "calibration" else ""))
    return corpus


def available() -> list[Corpus]:
    """The known corpora present on this machine, calibration first."""
    out = []
    for name in KNOWN:
        try:
            out.append(resolve(name))
        except ValueError:
            pass
    return out


def select(specs: list[str]) -> list[Corpus]:
    """The corpora a benchmark's ``--corpus`` options name, or every known one present when none
    is named; raises ValueError with the reason when one holds no calls or none is found."""
    corpora = [resolve(spec) for spec in specs] if specs else available()
    if not corpora:
        raise ValueError("no corpus found (tools/render_calibration.py renders the calibration set)")
    return corpora
