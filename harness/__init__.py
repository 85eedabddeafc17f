"""echolab: a pytest harness that runs a TCP echo server and its client as separate hosts and judges them."""

__version__ = "0.1.0"
