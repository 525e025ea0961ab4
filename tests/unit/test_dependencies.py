"""dvc.yaml matches the code: each stage depends on every project module it imports and every param it reads.

Both are derived from the source with `ast`, so a new import or a new `params.x.y` read fails this test until
dvc.yaml lists it (a missing dependency means `dvc repro` skips a stage whose result changed).

Params reads are traced from each stage's `main()` through the project functions it calls. A params object
(`params`, a section such as `params.data`, or an alias of either) counts as read key by key where the code
reads its attributes, and as read whole where it is used any other way (`params.finetune.model_dump()`).
Passed to a project function, it is traced into that function, whose parameter must carry its schema type
(`data: Data`) so the trace can follow it. `paths.*` are not listed: dvc.yaml interpolates them into deps and
outs, so changing one changes the stage anyway.
"""

import ast
from pathlib import Path

import pytest
import yaml

from hfx.tasks import TASKS
from hfx.training.params import Params
from tests.project import ROOT

SECTION_TYPES = {"Params": ()} | {
    field.annotation.__name__: (name,)
    for name, field in Params.model_fields.items()
    if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields")
}


STAGES = {
    name: stage
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()
    if name != "check_params"
}  # the guard declares the whole file


def module_file(module: str) -> Path:
    path = ROOT / module.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


PROJECT_PACKAGES = ("stages", "hfx")


# Where hfx/tasks.py imports a task's adapter or handler by its name, for a stage running that task.
DYNAMIC_IMPORTS = {"adapter_class": "adapter", "handler_class": "handler", "handler_module": "handler"}


def task_module(task: str, kind: str) -> str:
    """The module of a task's adapter or handler."""
    return getattr(TASKS[task], kind).partition(":")[0]


def imported_modules(module: str, task: str | None = None, top_level_only: bool = False) -> set[str]:
    """The project modules `module` imports by name (a `from hfx.x import name` of a submodule counts too), and
    those it imports through hfx/tasks.py for `task` (for every task when None)."""
    found = set()
    tree = ast.parse(module_file(module).read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PROJECT_PACKAGES:
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if module_file(f"{node.module}.{alias.name}").is_file()
            )
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] in PROJECT_PACKAGES)
    called = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    for attribute, kind in DYNAMIC_IMPORTS.items():
        if attribute in called and module != "hfx.tasks":
            found.update(task_module(name, kind) for name in ([task] if task else TASKS))
    return {name for name in found if module_file(name).is_file()}


def project_imports(module: str, task: str | None = None) -> set[str]:
    """`module` and every project module it imports, directly or through another (a package's __init__ too),
    when it runs `task`."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo += imported_modules(current, task)
        parts = current.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts))]  # hfx.training.adapters.x runs adapters/__init__
    return {name for name in seen if module_file(name).read_text().strip()}  # an empty __init__.py runs nothing


class Definitions:
    """Every function of the project's modules: module-level ones by name, methods by name."""

    def __init__(self):
        self.functions, self.methods, self.classes = {}, {}, {}
        for path in sorted(p for package in PROJECT_PACKAGES for p in (ROOT / package).rglob("*.py")):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef):
                    self.functions.setdefault(node.name, []).append(node)
                elif isinstance(node, ast.ClassDef):
                    methods = [n for n in node.body if isinstance(n, ast.FunctionDef)]
                    self.classes[node.name] = methods
                    for method in methods:
                        self.methods.setdefault(method.name, []).append(method)

    def callees(self, call: ast.Call) -> list[ast.FunctionDef]:
        if isinstance(call.func, ast.Name):
            return self.functions.get(call.func.id, []) + self.classes.get(call.func.id, [])
        if isinstance(call.func, ast.Attribute):
            return self.methods.get(call.func.attr, [])
        return []


def chain(node: ast.AST) -> tuple[str | None, tuple[str, ...]]:
    """`a.b.c` -> ("a", ("b", "c")); anything not a plain name chain -> (None, ())."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return (node.id, tuple(reversed(attrs))) if isinstance(node, ast.Name) else (None, ())


def key_of(path: tuple[str, ...]) -> str:
    """A params path as dvc.yaml names it: `task`, `data` (whole section) or `data.source`."""
    if not path:
        return "params.yaml"  # the whole file
    section = Params.model_fields[path[0]].annotation
    if len(path) > 1 and hasattr(section, "model_fields") and path[1] in section.model_fields:
        return f"{path[0]}.{path[1]}"
    return path[0]


def is_object(path: tuple | None) -> bool:
    """The params object itself or one of its sections, as opposed to a value read from them."""
    return path is not None and (
        path == () or len(path) == 1 and hasattr(Params.model_fields[path[0]].annotation, "model_fields")
    )


def param_reads(function: ast.FunctionDef, defs: Definitions, roots: dict[str, tuple], reads: set, todo: list):
    """Add to `reads` what `function` reads of the params objects named in `roots` (name -> params path), and
    to `todo` the project functions it calls (with the params objects passed to them)."""
    roots = dict(roots)
    for arg in function.args.args + function.args.kwonlyargs:
        if isinstance(arg.annotation, ast.Name) and arg.annotation.id in SECTION_TYPES:
            roots[arg.arg] = SECTION_TYPES[arg.annotation.id]
    for node in ast.walk(function):  # a stage's `params = load_params()`
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "load_params"
        ):
            roots.update({target.id: () for target in node.targets if isinstance(target, ast.Name)})

    def path_of(node) -> tuple | None:
        name, attrs = chain(node)
        return roots[name] + attrs if name in roots else None

    def visit(node, handled=False):
        if isinstance(node, ast.Assign):  # aliases: `data = params.data`, `task, ft = ..., params.finetune`
            pairs = [(node.targets[0], node.value)]
            if isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(node.targets[0].elts, node.value.elts))
            for target, value in pairs:
                path = path_of(value)
                if isinstance(target, ast.Name) and is_object(path):
                    roots[target.id] = path
                else:
                    visit(value)
            return
        if isinstance(node, ast.Call):
            callees = defs.callees(node)
            for i, arg in enumerate(node.args):
                if callees and is_object(path_of(arg)):
                    for callee in callees:
                        params_args = (
                            callee.args.args[1:] if callee in defs.methods.get(callee.name, []) else callee.args.args
                        )
                        annotated = (
                            i < len(params_args)
                            and isinstance(params_args[i].annotation, ast.Name)
                            and params_args[i].annotation.id in SECTION_TYPES
                        )
                        assert annotated, (
                            f"{function.name} passes {ast.unparse(arg)} to {callee.name}(): annotate"
                            " that parameter with its schema type so its reads are traced"
                        )
                    continue  # traced in the callee
                visit(arg)
            for keyword in node.keywords:
                visit(keyword.value)
            todo.extend(callees)
            visit(node.func)
            return
        if isinstance(node, (ast.Attribute, ast.Name)):
            path = path_of(node)
            if path is not None:
                if path[:1] != ("paths",):
                    reads.add(key_of(path))
                return
        for child in ast.iter_child_nodes(node):
            visit(child)

    for statement in function.body:
        visit(statement)


def stage_param_reads(module: str) -> set[str]:
    defs = Definitions()
    main = next(
        n
        for n in ast.parse(module_file(module).read_text()).body
        if isinstance(n, ast.FunctionDef) and n.name == "main"
    )
    reads, todo, seen = set(), [main], set()
    while todo:
        function = todo.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        param_reads(function, defs, {}, reads, todo)
    return reads


def covered(key: str, declared: list[str]) -> bool:
    return any(key == entry or key.startswith(entry + ".") for entry in declared)


def stage_deps(stage: str, task: str) -> list[Path]:
    """A stage's deps when params.yaml names `task` (dvc.yaml's `${task}` filled in)."""
    return [Path(dep.replace("${task}", task)) for dep in STAGES[stage]["deps"]]


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_depends_on_every_project_module_it_imports(stage, task):
    module = STAGES[stage]["cmd"].split("-m ")[1].split()[0]
    needed = {module_file(m).relative_to(ROOT) for m in project_imports(module, task)}
    deps = stage_deps(stage, task)
    missing = sorted(str(path) for path in needed if not any(dep == path or dep in path.parents for dep in deps))
    assert not missing, (
        f"dvc.yaml: stage {stage} imports {missing} for {task} but does not list them (or their folder) in deps"
    )


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_lists_a_tasks_own_modules_only_for_that_task(stage):
    """Editing one task's adapter or handler reruns only the runs of that task: dvc.yaml names them through
    `${task}`, never all of them (a folder holding them counts)."""
    own = {
        name: {module_file(task_module(name, kind)).relative_to(ROOT) for kind in ("adapter", "handler")}
        for name in TASKS
    }
    for task in TASKS:
        others = set().union(*(modules for name, modules in own.items() if name != task))
        listed = [p for p in others for dep in stage_deps(stage, task) if dep == p or dep in p.parents]
        assert not listed, (
            f"dvc.yaml: stage {stage} of a {task} run depends on other tasks' modules {sorted(map(str, listed))}"
        )


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_declares_every_param_it_reads(stage):
    module = STAGES[stage]["cmd"].split("-m ")[1].split()[0]
    declared = [entry for entry in STAGES[stage].get("params", []) if isinstance(entry, str)]
    reads = stage_param_reads(module)
    assert reads, "the trace found no reads at all: it is broken"
    missing = sorted(key for key in reads if not covered(key, declared))
    assert not missing, f"dvc.yaml: stage {stage} reads {missing} but its params list only {declared}"


def test_the_trace_sees_reads_through_aliases_calls_and_whole_sections():
    """The analysis itself, on the stages as they are: each kind of read it must follow."""
    download = stage_param_reads("stages.download")  # data = params.data; load_source(data) in sources.py, ...
    assert {"data.source", "data.revision", "data.splits", "data.max_samples", "data.text_column"} <= download
    assert "preprocess.max_length" in stage_param_reads("stages.preprocess")  # params.preprocess.max_length
    finetune = stage_param_reads("stages.finetune")
    assert {"finetune", "model", "task"} <= finetune  # ft = params.finetune ... ft.model_dump()
    export = stage_param_reads("stages.export")  # write_model_card(..., params, ...) in model_card.py
    assert {"data.source", "data.text_pair_column", "preprocess.max_length", "finetune"} <= export


SERVING = sorted(
    str(path.relative_to(ROOT).with_suffix("")).replace("/", ".")
    for path in [
        *(ROOT / "hfx/serving").rglob("*.py"),
        ROOT / "hfx/predict.py",
        ROOT / "hfx/serve.py",
        ROOT / "hfx/push.py",
    ]
)


TRAINING_LIBRARIES = {"torch", "transformers", "datasets", "dvclive", "accelerate", "sklearn", "dvc"}


def imports_of(module: str) -> list[tuple[str, str | None]]:
    """(imported module, the function or class it is imported in, or None at module level)."""
    found = []

    def visit(node, scope):
        for child in ast.iter_child_nodes(node):
            inner = (
                f"{scope}.{child.name}"
                if scope and isinstance(child, (ast.FunctionDef, ast.ClassDef))
                else child.name
                if isinstance(child, (ast.FunctionDef, ast.ClassDef))
                else scope
            )
            if isinstance(child, ast.Import):
                found.extend((alias.name, scope) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.append((child.module or "", scope))
            visit(child, inner)

    visit(ast.parse(module_file(module).read_text()), None)
    return found


@pytest.mark.parametrize("module", SERVING)
def test_the_serving_half_never_imports_the_training_half_or_torch(module):
    """predict and serve run from an exported folder on a machine with requirements-serve.txt alone. The one
    exception is the `pytorch` format's runner, which imports torch and transformers when that format is asked
    for."""
    for name, scope in imports_of(module):
        assert not name.startswith(("hfx.training", "stages")), (
            f"{module} imports {name}: serving must not need training"
        )
        if name.split(".")[0] in TRAINING_LIBRARIES:
            assert scope is not None and scope.startswith("TorchRunner"), (
                f"{module} imports {name} ({'at module level' if scope is None else 'in ' + scope}):"
                " not in requirements-serve.txt"
            )


def test_the_serving_check_sees_a_forbidden_import():
    """The check itself: a serving module that imports the training half or torch fails it."""
    bad = ROOT / "hfx/serving/_bad_for_test.py"
    bad.write_text("from hfx.training.params import Params\n")
    try:
        with pytest.raises(AssertionError, match="serving must not need training"):
            test_the_serving_half_never_imports_the_training_half_or_torch("hfx.serving._bad_for_test")
        bad.write_text("import torch\n")
        with pytest.raises(AssertionError, match="at module level"):
            test_the_serving_half_never_imports_the_training_half_or_torch("hfx.serving._bad_for_test")
    finally:
        bad.unlink()
