"""Measuring the product on labelled data: the evaluations behind `devmesh eval ...` and the benchmarks
behind `devmesh bench ...`. These harnesses wire the services (they are entry points, like the CLI); the
scoring they apply sits next to what it scores (`detect.scoring`, `ingest.templates.scoring`), and
standalone timing scripts of the lower packages live in `bench/`.
"""
