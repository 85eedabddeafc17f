"""Network conditions (--net) and faults: what they are (conditions.py), and how they are put on the
link between the client host and the server host and taken off again (docker.py)."""
