"""`shadow-bench`: measuring an exported model on this machine, side by side with reference implementations.

- `measure`: what is measured on the runtime (latency, decode steps, time to first token, memory, bandwidth bound);
- `weight_traffic`: the weight bytes one decode step reads, from the ONNX file (no `onnx` package needed);
- `cli`: the `shadow-bench` command, which starts each reference in its own process; its options are `options`,
  its errors and exit statuses `errors`, the commands it measures `commands`;
- `reference_process`: the `--against` references (what each needs, its source) and the process each runs in;
- `references`: the PyTorch and optimum references (need the export extra; run only in their own processes);
- `plot`: the report's PNG (matplotlib; run in its own process).

The runtime never imports this package; this package imports the runtime, never torch at module level.
"""
