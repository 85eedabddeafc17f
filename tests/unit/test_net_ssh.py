"""--net on ssh: the commands that put each condition on the Pi touch only the lab's TCP."""

from __future__ import annotations

from harness.net.conditions import Conditions
from harness.net.ssh import DROP_MARK, LAB_MARK, steps

CLIENT, SSH_PORT = "192.0.2.7", 2222


def commands(net: str) -> list[tuple[str, str, str | None]]:
    found = steps(Conditions.parse(net), "wlan0", CLIENT, SSH_PORT)
    return [(part, " ".join(command), undo and " ".join(undo)) for part, command, undo in found]


def test_every_rule_matches_only_tcp_with_the_client_and_never_the_ssh_port():
    rules = [(command, undo) for _, command, undo in commands("loss=5%,rate=1mbit,mtu=576") if "iptables" in command]
    assert len(rules) == 5
    for command, undo in rules:
        assert (
            f"-s {CLIENT} -p tcp ! --dport {SSH_PORT}" in command
            or f"-d {CLIENT} -p tcp ! --sport {SSH_PORT}" in command
        )
        assert "-i wlan0" in command or "-o wlan0" in command
        chain = command.split(" -I ")[1].split()[0]
        assert undo == command.replace(f"-I {chain} {command.split(f' -I {chain} ')[1].split()[0]}", f"-D {chain}")


def test_loss_drops_on_the_way_in_and_marks_a_share_of_the_way_out_for_htb_to_drop():
    found = commands("loss=5%")
    assert found[0][1].endswith("--probability 0.05 -j DROP") and "! --tcp-flags RST RST" in found[0][1]
    assert found[1] == ("loss=5%", "tc qdisc add dev wlan0 root handle 1: htb", "tc qdisc del dev wlan0 root")
    assert f"--set-xmark {DROP_MARK:#x}/0xff000000" in found[2][1] and "! --tcp-flags RST RST" in found[2][1]
    # classic BPF: the mark (masked) is DROP_MARK -> TC_ACT_SHOT (2), else -1: the next filter
    assert found[3][1].endswith(f",21 0 1 {DROP_MARK},6 0 0 2,6 0 0 4294967295 da"), found[3][1]
    assert "TCPMSS" not in " ".join(command for _, command, _ in found)


def test_the_labs_mark_comes_before_the_drop_mark_and_rate_is_tbf_in_the_labs_class():
    found = commands("loss=5%,rate=1mbit")
    marks = [command for _, command, _ in found if "--set-xmark" in command]
    assert f"{LAB_MARK:#x}" in marks[0] and "POSTROUTING 1 " in marks[0]
    assert f"{DROP_MARK:#x}" in marks[1] and "POSTROUTING 2 " in marks[1]
    tbf = next(command for part, command, _ in found if part == "rate=1mbit")
    assert tbf == "tc qdisc add dev wlan0 parent 1:10 handle 20: tbf rate 1000kbit burst 1600b latency 400ms"


def test_mtu_is_an_mss_clamp_on_syns_both_ways():
    found = commands("mtu=576")
    assert [part for part, _, _ in found] == ["mtu=576", "mtu=576"]
    assert "mangle -I PREROUTING 1 -i wlan0" in found[0][1] and "mangle -I POSTROUTING 1 -o wlan0" in found[1][1]
    assert all(command.endswith("--tcp-flags SYN,RST SYN -j TCPMSS --set-mss 536") for _, command, _ in found)


def test_netem_is_named_for_the_conditions_that_need_it():
    found = commands("delay=50ms,reorder=10%")
    netem = [part for part, command, _ in found if "netem" in command]
    assert netem == ["delay=50ms,reorder=10%"]
