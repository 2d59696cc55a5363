"""python -m microbp {bench,demo,info} | --version: the command line."""
import sys

# what to do when the C core is missing (info prints it with the reason)
C_FIX = ("to build it, install a C compiler (gcc or clang; on macOS: xcode-select --install) "
         "and reinstall microbp from its source tree (pip install --force-reinstall "
         "--no-deps ., or pip install -e . for an editable install); meanwhile "
         "everything runs in pure Python (backend python)")


def info(argv=None):
    import argparse
    import platform
    import microbp
    from microbp import backend
    ap = argparse.ArgumentParser(prog="python -m microbp info",
                                 description="Version, backends and how the C core was built.")
    ap.parse_args(argv)
    print(f"microbp {microbp.__version__} (Python {platform.python_version()})")
    print(f"available backends: {', '.join(backend.available_backends())}")
    try:
        print(f"backend in force: {backend.get_backend()}")
    except backend.BackendError as e:
        print(f"backend in force: none ({e})")
    err = backend.c_import_error()
    if err is None:
        from microbp import cexec
        print(f"C core: built ({cexec.__file__.rsplit('/', 1)[0]}/_cmicrobp)")
        print(f"C core flags: {cexec.build_flags()}")
    else:
        print(f"C core: not built: {err}")
        print(f"  {C_FIX}")
    return 0


COMMANDS = {
    "bench": ("time a training step on every path (eager Python, tape Python, tape C, torch)",
              lambda argv: __import__("microbp.bench", fromlist=["main"]).main(argv)),
    "demo": ("train the moons classifier and draw its decision boundary",
             lambda argv: __import__("microbp.demo", fromlist=["main"]).main(argv)),
    "info": ("version, available backends, whether the C core is built and its flags", info),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-V", "--version"):
        import microbp
        print(f"microbp {microbp.__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: python -m microbp {bench,demo,info} [--help] | --version\n")
        for name, (text, _) in COMMANDS.items():
            print(f"  {name:6} {text}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nunknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    return COMMANDS[argv[0]][1](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
