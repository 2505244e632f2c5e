"""The command line: main.py (parse, dispatch, one-line errors), terminal.py (the option flags
from options.SPECS, the progress bar, stop on a signal), verbs.py (the verbs and the front
ends' own flags), figures.py (the paper's figures from your images)."""
