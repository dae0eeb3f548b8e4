from firmware.speech.guards import clean_transcript, collapse_repeats, strip_annotations


def test_sound_annotations_are_not_speech() -> None:
    assert strip_annotations("(upbeat music)") == ""
    assert strip_annotations("[BLANK_AUDIO]") == ""
    assert strip_annotations("Okay (laughs) let's do it") == "Okay let's do it"
    assert clean_transcript("(upbeat music)", 3.0, max_words_per_s=5, min_words=6) == ""
    assert clean_transcript(" ... ", 3.0, max_words_per_s=5, min_words=6) == ""


def test_repetition_loops_collapse() -> None:
    looped = "of the last pack of the last pack of the last pack of the last pack".split()
    assert " ".join(collapse_repeats(looped)) == "of the last pack of the last pack"
    assert collapse_repeats("no no no no".split()) == ["no", "no"]
    assert collapse_repeats("we we said it".split()) == ["we", "we", "said", "it"]  # two is speech


def test_words_are_capped_by_segment_duration() -> None:
    runaway = " ".join(f"w{i}" for i in range(100))
    assert len(clean_transcript(runaway, 2.0, max_words_per_s=5, min_words=6).split()) == 10
    assert len(clean_transcript(runaway, 0.2, max_words_per_s=5, min_words=6).split()) == 6
    normal = "that is more than we budgeted for this year"
    assert clean_transcript(normal, 3.0, max_words_per_s=5, min_words=6) == normal
