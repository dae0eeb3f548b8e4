"""``parallax admin``: sign and publish updates, read the fleet, roll back (an admin's machine).

    parallax admin keygen --out DIR
    parallax admin publish --group G (--model DIR | --playbook FILE) --version V [--url-base URL]
    parallax admin status
    parallax admin rollback (--group G | --box B) --name NAME

Connection: ``--broker HOST:PORT``, ``--tls-dir DIR`` holding ``ca.crt`` and ``admin-<NAME>.crt/.key``
(tools/fleet_certs.py), ``--admin NAME``; signing: ``--signing-key FILE``. Exit status 0, or 2 with
one line on stderr (bad arguments, unreachable broker, refused certificate, unreadable key).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("admin", help="fleet admin: keygen, publish an update, fleet status, rollback")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def connection(q: argparse.ArgumentParser) -> None:
        q.add_argument("--broker", default=os.environ.get("PARALLAX_BROKER", "localhost:8883"), help="HOST:PORT (default $PARALLAX_BROKER or localhost:8883)")
        q.add_argument("--tls-dir", type=Path, default=Path(os.environ.get("PARALLAX_TLS_DIR", ".")), help="folder with ca.crt and admin-NAME.crt/.key")
        q.add_argument("--admin", default=os.environ.get("PARALLAX_ADMIN", "ops"), help="admin name (certificate admin-NAME)")

    k = verbs.add_parser("keygen", help="make an Ed25519 signing key pair")
    k.add_argument("--out", type=Path, required=True, help="folder for signing.key (0600) and signing.pub")
    k.set_defaults(handler=keygen)

    pub = verbs.add_parser("publish", help="sign and publish an update to a group")
    connection(pub)
    pub.add_argument("--signing-key", type=Path, required=True)
    pub.add_argument("--group", required=True)
    what = pub.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", type=Path, help="a model store version folder (manifest.toml; golden.json, or give --golden)")
    what.add_argument("--playbook", type=Path, help="playbook TOML")
    pub.add_argument("--golden", type=Path, help="the self-test's golden inputs for the model")
    pub.add_argument("--version", required=True)
    pub.add_argument("--url-base", help="boxes fetch https://.../<sha256> instead of MQTT chunks")
    pub.add_argument("--artifact-dir", type=Path, default=Path("artifacts"), help="with --url-base: where the file to upload is written")
    pub.add_argument("--expires-days", type=float, default=7.0)
    pub.set_defaults(handler=publish)

    st = verbs.add_parser("status", help="the fleet table: box, online, versions, last update, health")
    connection(st)
    st.add_argument("--wait", type=float, default=1.5, help="seconds to collect retained messages")
    st.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    st.set_defaults(handler=status)

    rb = verbs.add_parser("rollback", help="make the previous version of a model current again")
    connection(rb)
    rb.add_argument("--signing-key", type=Path, required=True)
    where = rb.add_mutually_exclusive_group(required=True)
    where.add_argument("--group")
    where.add_argument("--box")
    rb.add_argument("--name", required=True, help="model name (intent, playbook, ...)")
    rb.set_defaults(handler=rollback)


def _connect(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from firmware.fleet.admin import AdminClient, Connection

    return AdminClient(Connection.from_tls_dir(args.broker, args.tls_dir, args.admin))


def keygen(args: argparse.Namespace) -> int:
    from firmware.atomic import write_text_atomic
    from firmware.errors import InputError
    from firmware.fleet.signing import SigningKey

    out: Path = args.out
    if (out / "signing.key").exists():
        raise InputError(f"{out / 'signing.key'} exists; not overwriting a signing key")
    out.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    key.save(out / "signing.key")
    write_text_atomic(out / "signing.pub", key.public_line + "\n")
    print(f"key id {key.key_id}; pin it on the boxes with:\n[fleet]\nadmin_keys = [\"{key.public_line}\"]")
    return 0


def publish(args: argparse.Namespace) -> int:
    from firmware.errors import InputError, ParallaxError
    from firmware.fleet.admin import model_tar, publish_update
    from firmware.fleet.signing import SigningKey

    key = SigningKey.load(args.signing_key)
    if args.model is not None:
        from firmware.store import read_manifest

        try:
            manifest = read_manifest(args.model)
        except ParallaxError as exc:
            raise InputError(str(exc)) from None
        if manifest.version != args.version:
            raise InputError(f"{args.model}: its manifest says version {manifest.version}, not {args.version}")
        kind, name, data = "model", manifest.name, model_tar(args.model, args.golden)
    else:
        try:
            data = args.playbook.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read the playbook {args.playbook}: {exc.strerror}") from None
        from firmware.coach.playbook import load_playbook

        load_playbook(args.playbook)  # refuse to send what every box would reject
        kind, name = "playbook", "playbook"
    if args.expires_days <= 0:
        raise InputError("--expires-days must be > 0")
    client = _connect(args)
    try:
        offer = publish_update(client, key, group=args.group, kind=kind, name=name, version=args.version, data=data, url_base=args.url_base, artifact_dir=args.artifact_dir, life_s=args.expires_days * 86400)
    finally:
        client.close()
    art = offer["artifacts"][0]
    where = f"upload {args.artifact_dir / art['sha256']} to {art['url']}" if args.url_base else f"{len(art['chunk_sha256'])} chunks over MQTT"
    print(f"published update {offer['update_id']}: {name} {args.version} ({art['size']} bytes, {where}) to group {args.group}")
    return 0


def status(args: argparse.Namespace) -> int:
    from firmware.fleet.admin import fleet_table, format_table

    client = _connect(args)
    try:
        messages = client.collect(["parallax/v1/box/+/status", "parallax/v1/box/+/telemetry", "parallax/v1/box/+/progress"], args.wait)
    finally:
        client.close()
    boxes = fleet_table(messages)
    print(json.dumps(boxes, sort_keys=True) if args.json else format_table(boxes))
    return 0


def rollback(args: argparse.Namespace) -> int:
    from firmware.fleet.admin import PREFIX, make_command
    from firmware.fleet.signing import SigningKey

    key = SigningKey.load(args.signing_key)
    command = make_command("rollback", args.name, group=args.group, boxes=[args.box] if args.box else [])
    topic = f"{PREFIX}/group/{args.group}/cmd" if args.group else f"{PREFIX}/box/{args.box}/cmd"
    client = _connect(args)
    try:
        client.publish(topic, key.seal(command))
    finally:
        client.close()
    print(f"rollback {command['command_id']} of {args.name} sent to {args.group or args.box}")
    return 0
