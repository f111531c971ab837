"""Reports over runs: markdown tables (`table`), matplotlib figures (`figures`) and
REPORT.md tying them together (`document`). Everything reads runs through `lab.results`."""
