"""``make bench``: how fast the echo servers and the harness are, next to what people use instead.

Run it with ``python -m harness.bench [--quick] [--out DIR]``; see ``__main__`` for the phases and
``report`` for what the table, the JSON file and the chart hold.
"""
