"""Custom import-linter contract types (a dev-time tool, run by `lint-imports`).

import-linter's built-in contracts can forbid named modules but cannot say "only the
standard library": a forbidden list of third-party packages goes stale as soon as someone
adds a new dependency. `StdlibOnlyContract` inverts it: every import made by the package
must be the stdlib, the package itself, or a first-party module named in `allowed_modules`.
It needs `include_external_packages = true`, so external imports appear in the graph.
"""

from __future__ import annotations

import sys

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


class StdlibOnlyContract(Contract):
    """Modules under `package` import only the stdlib, `package.*` and `allowed_modules`.

    The allowed first-party modules are held to the same rule, so they cannot be used to
    pull a third-party library in by the back door.
    """

    type_name = "stdlib_only"

    package = fields.StringField()
    allowed_modules = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        package: str = self.package  # type: ignore[assignment]
        allowed: set[str] = set(self.allowed_modules or [])  # type: ignore[arg-type]
        for name in (package, *sorted(allowed)):
            if name not in graph.modules:
                raise ValueError(f"Module '{name}' does not exist.")
        roots = {name.split(".")[0] for name in self.session_options["root_packages"]}
        checked = {package, *graph.find_descendants(package), *allowed}
        violations: list[dict[str, object]] = []
        for importer in sorted(checked):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                top = imported.split(".")[0]
                if imported in checked or (top not in roots and top in sys.stdlib_module_names):
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = tuple(d["line_number"] for d in details)
                violations.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error(
            f"{self.package} may import only the standard library, its own modules"
            f" and {sorted(self.allowed_modules or []) or 'nothing else'}:"  # type: ignore[arg-type]
        )
        output.new_line()
        for v in check.metadata["violations"]:
            lines = ", ".join(f"l.{n}" for n in v["lines"]) or "?"
            output.print_error(f"-   {v['importer']} -> {v['imported']} ({lines})", bold=False)
        output.new_line()
