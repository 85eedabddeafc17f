"""Ladder rows as Wireshark's flow graph labels them, with RSTs, retransmissions and dropped SYNs
told apart, and long data folded like the packet table."""

from __future__ import annotations

import re

from harness.report.ladder import arrows, lab_arrows, svg
from harness.wire.pcap import ACK, PSH, RST, SYN, read_pcap
from harness.wire.tcp import connections, lab_ladder

from .packets import C_ISN, CLIENT, S_ISN, SERVER, exchange, tcp, write_pcap


def conn_of(tmp_path, packets):
    (conn,) = connections(read_pcap(write_pcap(tmp_path / "c.pcap", packets)), SERVER[1])
    return conn


def test_labels_are_wiresharks_flow_graph_labels(tmp_path):
    rows = arrows(conn_of(tmp_path, exchange(b"Hello world!\n")))
    assert [r.label for r in rows] == [
        "[SYN] Seq=0",
        "[SYN, ACK] Seq=0 Ack=1",
        "[ACK] Seq=1 Ack=1",
        "[PSH, ACK] Seq=1 Ack=1 Len=13",
        "[ACK] Seq=1 Ack=14",
        "[PSH, ACK] Seq=1 Ack=14 Len=13",
        "[ACK] Seq=14 Ack=14",
        "[FIN, ACK] Seq=14 Ack=14",
        "[FIN, ACK] Seq=14 Ack=15",
        "[ACK] Seq=15 Ack=15",
    ]
    assert [r.from_client for r in rows] == [True, False, True, True, False, False, True, True, False, True]
    assert [r.kind for r in rows] == ["syn", "syn", "ack", "data", "ack", "data", "ack", "fin", "fin", "ack"]


def test_a_reset_is_its_own_kind_and_drawn_apart(tmp_path):
    rows = arrows(conn_of(tmp_path, exchange(server_ends_with=RST | ACK)))
    assert (rows[-1].kind, rows[-1].label, rows[-1].from_client) == ("rst", "[RST, ACK] Seq=14 Ack=15", False)
    drawn = svg(rows, "c", "s")
    assert drawn.count('class="k-rst"') == 1 and "[RST, ACK]" in drawn


def test_a_retransmission_is_marked(tmp_path):
    packets = exchange()
    packets.insert(4, packets[3])  # the client's data again
    rows = arrows(conn_of(tmp_path, packets))
    assert rows[4].kind == "retrans" and rows[4].label.startswith("[TCP Retransmission] [PSH, ACK] Seq=1")


def test_an_unanswered_syn_is_drawn_dropped(tmp_path):
    syn = tcp(CLIENT, SERVER, SYN, C_ISN, 0)
    rows = arrows(conn_of(tmp_path, [syn, syn]))
    assert [r.kind for r in rows] == ["dropped", "dropped"]
    assert rows[1].label == "[TCP Retransmission] [SYN] Seq=0 (never answered)"
    assert svg(rows, "c", "s").count("\u2715") == 2  # each stops short of the server, crossed out


def test_a_long_data_phase_is_folded_like_the_packet_table(tmp_path):
    packets = exchange()[:3]
    for i in range(200):
        packets.append(tcp(CLIENT, SERVER, PSH | ACK, C_ISN + 1 + i, S_ISN + 1, data=b"x"))
        packets.append(tcp(SERVER, CLIENT, ACK, S_ISN + 1, C_ISN + 2 + i))
    rows = arrows(conn_of(tmp_path, packets))
    folds = [r for r in rows if r.kind == "fold"]
    assert len(folds) == 1 and re.fullmatch(r"\.\.\. \d+ data segments \(\d+ bytes\) \.\.\.", folds[0].label)
    assert len(rows) < 30
    assert rows[-1].label == f"[ACK] Seq=1 Ack={200 + 1}"


def test_the_labs_ladder_is_drawn_with_its_packet_numbers():
    rows = lab_arrows(lab_ladder(5))
    assert [r.no for r in rows][:4] == ["11", "12", "13", "18"]
    assert rows[3].label == "[PSH, ACK] Len=5" and rows[7].label == "[FIN, ACK]"
    assert rows[4].label == "[ACK] (optional)"


def test_labels_are_escaped():
    from harness.report.ladder import Arrow

    drawn = svg([Arrow("1", "0.0", True, "<script>", "data")], "<c>", "s&s")
    assert "<script>" not in drawn and "&lt;c&gt;" in drawn and "s&amp;s" in drawn
