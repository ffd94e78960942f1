"""Training the three stages: windows of prepared tokens, the loop with exact resume, distributed set-up."""
