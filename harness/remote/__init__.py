"""What echolab ships to a client or server host (a container, a Raspberry Pi) and runs there:
the socket probes and the process supervisor. Standard library only, Python 3.9+ (tests/unit/test_layout.py).
"""
