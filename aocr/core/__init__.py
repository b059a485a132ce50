"""What every layer shares: errors, defaults, every flag (options), the charset, params.json (ModelParams,
Decoding), files, image headers, precision, progress lines, stop signals, sessions and the SavedModel contract.

core imports nothing of aocr outside itself (pyproject.toml's import contracts).
"""
