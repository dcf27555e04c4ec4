"""Memory of this process from /proc/self/status (Linux), for the benchmarks' memory columns.

A module of its own so that a benchmark measuring a reference framework can use it without
importing minigrad (which sets OpenBLAS and malloc options at import)."""


def status_kib(field):
    """A field of /proc/self/status in KiB: "VmRSS" (now) or "VmHWM" (peak); 0 if absent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0
