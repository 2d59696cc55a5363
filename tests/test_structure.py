"""The package's shape: no import cycle among microbp's modules (counting
imports inside functions too), engine.py opens with Value, and the Python
executor, the tape format and the optimizers' kernels live where the README's
Layout says."""
import ast
import os

import microbp

PKG = os.path.dirname(microbp.__file__)


def imports_of(path, name):
    """The microbp modules that module `name` imports, anywhere in its file."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):           # `if TYPE_CHECKING:` imports are for hints only
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            node.body = []
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("microbp."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("microbp."))
    return out - {name}


def module_graph():
    mods = {f[:-3] for f in os.listdir(PKG) if f.endswith(".py")}
    graph = {m: imports_of(os.path.join(PKG, m + ".py"), m) & mods for m in mods}
    graph.pop("__init__", None)
    for m in graph:
        graph[m].discard("__init__")
    return graph


def test_no_import_cycle():
    graph = module_graph()
    state = {}

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [m, n]))
            if n not in state:
                visit(n, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_engine_opens_with_value_and_imports_no_checker_of_its_own():
    tree = ast.parse(open(os.path.join(PKG, "engine.py"), encoding="utf-8").read())
    defs = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    assert isinstance(defs[0], ast.ClassDef) and defs[0].name == "Value"


def test_each_piece_lives_in_its_module():
    from microbp import optim, tapeformat, pyexec, executor
    assert microbp.TapeError is tapeformat.TapeError
    assert hasattr(tapeformat, "check") and not hasattr(pyexec, "sgd")
    assert set(optim.PYTHON_KERNELS) == {"sgd", "momentum", "adam", "fill"}
    assert all(callable(getattr(pyexec, name)) for name in executor.Executor.__dict__
               if not name.startswith("_"))
    assert not hasattr(microbp.serialize, "dualmethod")
