"""The import structure: libraries never import a script, the project's modules import each other without a
cycle, and test modules share code only through helpers.py. Read from the source (every `import`, also those
inside functions), so a lazy import cannot hide an edge."""

import ast
from pathlib import Path

from helpers import ROOT

# Command-line entry points: they may import libraries, never the other way round.
SCRIPTS = {"v2s_main", "cam_v2s", "tsne_v2s", "swd_table", "reproduce", "fidelity", "pretrain_am"}
SCRIPT_FOLDERS = ("benchmarks",)  # every module in them is a script
TESTS = ROOT / "tests"


def project_modules() -> dict[str, Path]:
    """{module name: path} of the project's code: top-level modules, packages (`pkg.mod`) and benchmarks."""
    modules = {path.stem: path for path in ROOT.glob("*.py")}
    for init in ROOT.glob("*/__init__.py"):
        package = init.parent
        if package.name == "tests":
            continue
        modules[package.name] = init
        modules.update(
            {f"{package.name}.{path.stem}": path for path in package.glob("*.py") if path.stem != "__init__"}
        )
    for folder in SCRIPT_FOLDERS:
        modules.update({f"{folder}/{path.stem}": path for path in (ROOT / folder).glob("*.py")})
    return modules


def imported(path: Path, known) -> set[str]:
    """The modules of `known` that `path` imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in known)
    return found


def is_script(name: str) -> bool:
    return name in SCRIPTS or name.split("/")[0] in SCRIPT_FOLDERS


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported(path, modules) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle found by a depth-first search, each as [a, b, ..., a]."""
    found, done = [], set()

    def visit(node, stack):
        if node in stack:
            found.append(stack[stack.index(node) :] + [node])
            return
        if node in done:
            return
        for successor in sorted(graph.get(node, ())):
            visit(successor, stack + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


def test_the_graph_sees_lazy_imports_and_the_known_modules():
    graph = import_graph()
    assert {"training", "probes", "runs", "settings", "reproduce", "benchmarks/throughput"} <= set(graph)
    assert {"sweep", "sweep.plan", "sweep.stack", "sweep.executor", "sweep.protocols", "sweep.tables"} <= set(graph)
    assert "multi_program" in graph["sweep.stack"]  # imported inside a function only
    assert {"sweep.executor", "sweep.tables"} <= graph["reproduce"]
    assert "training" in graph["v2s_main"]
    assert {"speech_models", "am_weights", "speech_data", "am_training.speech_split", "am_training.corpus"} <= set(
        graph
    )


def test_the_am_architectures_import_neither_their_weights_nor_speech_data():
    graph = import_graph()
    assert "speech_models" in graph["am_weights"] and "speech_models" in graph["speech_data"]
    assert not {"am_weights", "speech_data"} & graph["speech_models"]
    assert "am_training.corpus" not in graph["am_training.speech_split"]


def test_no_library_imports_a_script():
    wrong = {
        name: sorted(filter(is_script, targets)) for name, targets in import_graph().items() if not is_script(name)
    }
    assert {name: scripts for name, scripts in wrong.items() if scripts} == {}


def test_the_project_imports_without_a_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_search_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_test_modules_share_code_only_through_helpers():
    tests = {path.stem: path for path in TESTS.glob("*.py")}
    shared = {name: sorted(imported(path, tests) - {"helpers"}) for name, path in tests.items()}
    assert {name: modules for name, modules in shared.items() if modules} == {}
