"""The kinds of telemetry a case bundle keeps (`devmesh eval make-cases nezha --modalities`): a module of its
own so that the CLI reads the option's default without importing the harness and the engines."""

MODALITIES = ("logs", "traces", "metrics")
