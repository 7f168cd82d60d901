"""`keyrouter keys init|add|list|remove|rotate`: manage the encrypted key file.

Secrets are read from stdin when it is not a terminal (`pass show openai | keyrouter keys add
...`), else from a prompt that does not echo; `--secret VALUE` works too but lands in shell
history, and says so. Output shows names, providers and fingerprints, never a secret.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from pathlib import Path

from keyrouter.cli._table import render_table
from keyrouter.errors import KeyFileError

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--keyfile",
        metavar="PATH",
        help="the key file (default: $KEYROUTER_KEYFILE, else ./keyrouter.keys)",
    )
    common.add_argument(
        "--master-key-file",
        metavar="PATH",
        help="the master key's file (default: $KEYROUTER_MASTER_KEY, else "
        "$KEYROUTER_MASTER_KEY_FILE, else ~/.config/keyrouter/master.key)",
    )
    parser = commands.add_parser(
        "keys",
        help="manage the encrypted key file (init, add, list, remove, rotate)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    init = actions.add_parser(
        "init", parents=[common], help="create a master key (if none is set) and an empty file"
    )
    init.set_defaults(run=_init)

    add = actions.add_parser("add", parents=[common], help="store a new key under a name")
    add.add_argument("name", help="how the key is shown and referred to (e.g. openai-prod)")
    add.add_argument("--provider", required=True, help="openai, anthropic, gemini, azure, ...")
    add.add_argument("--scope", help="the organisation/project whose limits the key shares")
    add.add_argument("--weight", type=float, default=1.0, help="selection weight (default 1)")
    add.add_argument("--base-url", help="this key's own server (an OpenAI-compatible one)")
    add.add_argument("--deployment", help="Azure OpenAI: the deployment this key's resource uses")
    _secret_argument(add)
    add.set_defaults(run=_add)

    listing = actions.add_parser(
        "list", parents=[common], help="names, providers and fingerprints (never secrets)"
    )
    listing.add_argument("--provider", help="only this provider's keys")
    listing.set_defaults(run=_list)

    remove = actions.add_parser("remove", parents=[common], help="delete a key by name")
    remove.add_argument("name")
    remove.set_defaults(run=_remove)

    rotate = actions.add_parser(
        "rotate",
        parents=[common],
        help="replace one key's secret (NAME), or re-encrypt under a new master key",
    )
    rotate.add_argument("name", nargs="?", help="the key whose secret changed")
    rotate.add_argument(
        "--new-master-key-file",
        metavar="PATH",
        help="re-encrypt the whole file under the master key in PATH (created if missing)",
    )
    _secret_argument(rotate)
    rotate.set_defaults(run=_rotate)


def _secret_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secret",
        metavar="VALUE",
        help="the secret itself (lands in your shell history: prefer stdin or the prompt)",
    )


def _master(args: argparse.Namespace) -> Path | None:
    return Path(args.master_key_file) if args.master_key_file else None


def _init(args: argparse.Namespace) -> int:
    from keyrouter import keyfile

    master = _master(args)
    written = None
    if master is not None and not master.exists():
        written = keyfile.write_master_key_file(master)
    elif master is None and not _has_master_key():
        written = keyfile.write_master_key_file()
    if written is not None:
        print(
            f"wrote a new master key to {written} (mode 0600). Back it up and keep it out of "
            "version control: without it the key file cannot be read."
        )
    created = keyfile.create(args.keyfile, master_key=master)
    print(f"created {created}; add keys with `keyrouter keys add NAME --provider PROVIDER`")
    return 0


def _has_master_key() -> bool:
    from keyrouter import keyfile

    return (
        bool(os.environ.get(keyfile.ENV_MASTER_KEY)) or keyfile.default_master_key_file().exists()
    )


def _add(args: argparse.Namespace) -> int:
    from keyrouter import keyfile

    if keyfile.keyfile_path(args.keyfile).exists():
        keyfile.load(
            args.keyfile, master_key=_master(args)
        )  # a wrong master key: before the prompt
    stored = keyfile.add(
        args.name,
        _read_secret(args, f"secret for {args.name}: "),
        provider=args.provider,
        scope=args.scope,
        weight=args.weight,
        base_url=args.base_url,
        deployment=args.deployment,
        path=args.keyfile,
        master_key=_master(args),
    )
    where = keyfile.keyfile_path(args.keyfile)
    print(f"added {stored.name} ({stored.provider}, {stored.key.fingerprint}) to {where}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from keyrouter import keyfile

    entries = keyfile.load(args.keyfile, master_key=_master(args))
    shown = [e for e in entries if args.provider is None or e.provider == args.provider]
    where = keyfile.keyfile_path(args.keyfile)
    if not shown:
        print(f"{where}: no keys" + (f" for {args.provider}" if args.provider else ""))
        return 0
    rows = [
        [
            e.name,
            e.provider,
            e.key.fingerprint,
            e.key.scope or "-",
            f"{e.key.weight:g}",
            time.strftime("%Y-%m-%d", time.localtime(e.added)) if e.added else "-",
        ]
        for e in shown
    ]
    print(render_table(["name", "provider", "fingerprint", "scope", "weight", "added"], rows))
    print(f"\n{len(shown)} key{'s' if len(shown) != 1 else ''} in {where}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from keyrouter import keyfile

    removed = keyfile.remove(args.name, path=args.keyfile, master_key=_master(args))
    where = keyfile.keyfile_path(args.keyfile)
    print(f"removed {removed.name} ({removed.provider}, {removed.key.fingerprint}) from {where}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from keyrouter import keyfile

    if (args.name is None) == (args.new_master_key_file is None):
        raise KeyFileError(
            "say what to rotate: NAME (replace that key's secret) or --new-master-key-file PATH "
            "(re-encrypt the file under a new master key), one of the two"
        )
    master = _master(args)
    where = keyfile.keyfile_path(args.keyfile)
    if args.name is not None:
        old = keyfile.lookup(args.name, path=args.keyfile, master_key=master)
        new = keyfile.replace_secret(
            args.name,
            _read_secret(args, f"new secret for {args.name}: "),
            path=args.keyfile,
            master_key=master,
        )
        print(f"replaced the secret of {new.name}: {old.key.fingerprint} -> {new.key.fingerprint}")
        return 0
    entries = keyfile.load(args.keyfile, master_key=master)  # the old master key must open it
    new_file = Path(args.new_master_key_file)
    created = not new_file.exists()
    if created:
        keyfile.write_master_key_file(new_file)
    try:
        keyfile.rotate_master_key(new_file, path=args.keyfile, master_key=master)
    except BaseException:
        if created:
            new_file.unlink(missing_ok=True)
        raise
    print(
        f"re-encrypted {len(entries)} key{'s' if len(entries) != 1 else ''} in {where} under "
        f"the master key in {new_file}"
        + (" (new, mode 0600)" if created else "")
        + ". Point KEYROUTER_MASTER_KEY_FILE (or --master-key-file) at it; the old master "
        "key no longer opens the file."
    )
    return 0


def _read_secret(args: argparse.Namespace, prompt: str) -> str:
    """From --secret, else stdin when piped, else a prompt that does not echo."""
    if args.secret is not None:
        print(
            "keyrouter keys: note: --secret puts the key in your shell history; "
            "prefer piping it on stdin or the prompt",
            file=sys.stderr,
        )
        secret: str = args.secret
    elif not sys.stdin.isatty():
        secret = sys.stdin.read()
    else:
        secret = getpass.getpass(prompt)
    secret = secret.strip()
    if not secret:
        raise KeyFileError("no secret given (empty stdin or prompt); nothing was changed")
    return secret
