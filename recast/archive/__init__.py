"""Run archives: write-once folders with a manifest of every file's sha256."""
