"""Reading LISTEN sockets from /proc/net/tcp* and ss output."""

from __future__ import annotations

from harness.procnet import Listener, listeners_from_proc, listeners_from_ss

PROC = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:22B8 00000000:0000 0A 00000000:00000004 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:22B8 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000000000000:22B8 00000000000000000000000000000000:0000 0A 00000000:00000001 00:0
"""


def test_finds_listeners_on_the_port_with_their_accept_queue():
    # 0x22B8 = 8888; the ESTABLISHED row (01) on the same port is not a listener.
    assert listeners_from_proc(PROC, 8888) == [Listener(8888, queued=4), Listener(8888, queued=1)]
    assert listeners_from_proc(PROC, 80) == [Listener(80, queued=0)]
    assert listeners_from_proc(PROC, 9999) == []


def test_reads_queue_and_backlog_from_ss():
    text = "LISTEN 4      3      0.0.0.0:8888      0.0.0.0:*\nLISTEN 0 128 [::]:22 [::]:*\n"
    assert listeners_from_ss(text, 8888) == [Listener(8888, queued=4, backlog=3)]
    assert listeners_from_ss(text, 22) == [Listener(22, queued=0, backlog=128)]
    assert listeners_from_ss("", 22) == []
