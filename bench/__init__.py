"""Standalone timing scripts of single components, run from the repository as `python -m bench.X`: they use the
lower packages directly and import nothing from api/ or tests/ (product evaluations and benchmarks are
`devmesh eval` and `devmesh bench`, in api/measure)."""
