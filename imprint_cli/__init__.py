"""`imprint`: Imprint from a terminal. Train on a text file as with encode.py and train.py (Ctrl+C
pauses, the same command resumes), publish, generate and verify, through the public HTTP API
only: this package never imports Django or the server's code."""

__version__ = "1.0.0"
