"""Fail when a committed notebook holds outputs or execution counts (the book build executes them)."""
import json
import subprocess
import sys

files = subprocess.run(["git", "ls-files", "*.ipynb"], capture_output=True, text=True, check=True).stdout.split()
bad = []
for path in files:
    nb = json.load(open(path))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and (cell.get("outputs") or cell.get("execution_count")):
            bad.append(path)
            break
if bad:
    sys.exit("notebooks with outputs (clear them: jupyter nbconvert --clear-output --inplace FILE): " + ", ".join(bad))
print(f"{len(files)} notebooks, none with outputs")
