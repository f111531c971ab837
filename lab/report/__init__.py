"""Reports over runs: markdown tables now; figures come with issue 6."""
