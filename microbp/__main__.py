"""python -m microbp {bench,demo,info}: the command line."""
import sys


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
    print(f"backend in force: {backend.get_backend()}")
    err = backend.c_import_error()
    if err is None:
        from microbp import cexec
        print(f"C core: built ({cexec.__file__.rsplit('/', 1)[0]}/_cmicrobp)")
        print(f"C core flags: {cexec.build_flags()}")
    else:
        print(f"C core: not built ({err})")
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
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: python -m microbp {bench,demo,info} [--help]\n")
        for name, (text, _) in COMMANDS.items():
            print(f"  {name:6} {text}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nunknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    return COMMANDS[argv[0]][1](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
