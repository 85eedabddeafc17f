"""--net CONDITIONS: parsed once, each mistake one line; the commands each condition becomes."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.net.conditions import Conditions


def test_parses_every_condition_with_its_units():
    net = Conditions.parse("loss=5%, rate=1.5mbit,mtu=576,delay=0.5s,reorder=10%")
    assert (net.loss, net.rate_kbit, net.mtu, net.delay_ms, net.reorder) == (5.0, 1500, 576, 500.0, 10.0)
    assert str(net) == "loss=5%,rate=1.5mbit,mtu=576,delay=0.5s,reorder=10%"
    assert net.needs_netem == ["delay=0.5s", "reorder=10%"]
    assert Conditions.parse("rate=64kbit").rate_kbit == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loss=5", "loss=5 is not a percentage between 0 and 100"),
        ("loss=100%", "not a percentage between 0 and 100"),
        ("rate=fast", "rate=fast is not a rate from 8kbit to 10gbit"),
        ("rate=1mb", "is not a rate"),
        ("mtu=40", "mtu=40 is not a number of bytes from 68 to 1500"),
        ("mtu=9000", "from 68 to 1500"),
        ("delay=50", "delay=50 is not a time in us, ms or s"),
        ("jitter=5ms", "unknown condition 'jitter'; choose from loss, rate, mtu, delay, reorder"),
        ("loss=1%,loss=2%", "loss is given twice"),
        ("loss", "'loss' is not KEY=VALUE"),
        ("loss=5%,", "'an empty part' is not KEY=VALUE"),
        ("reorder=5%", "reorder needs a delay"),
    ],
)
def test_a_malformed_condition_is_one_config_error_naming_it(text, message):
    with pytest.raises(ConfigError) as caught:
        Conditions.parse(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_loss_drops_tcp_segments_on_the_way_in_sparing_resets():
    (rule,) = Conditions.parse("loss=5%").loss_rules("eth0")
    assert rule[:3] == ["INPUT", "-i", "eth0"] and rule[-2:] == ["-j", "DROP"]
    assert "0.05" in rule and rule[3:9] == ["-p", "tcp", "!", "--tcp-flags", "RST", "RST"]


def test_rate_is_a_token_bucket_under_netem_when_there_is_a_delay():
    (tbf,) = Conditions.parse("rate=1mbit").egress_commands("eth0")
    assert " ".join(tbf) == "tc qdisc add dev eth0 root handle 2: tbf rate 1000kbit burst 1600b latency 400ms"
    netem, tbf = Conditions.parse("delay=20ms,reorder=5%,rate=100mbit").egress_commands("eth0")
    assert netem[6:] == ["handle", "1:", "netem", "delay", "20ms", "reorder", "5%"]
    assert tbf[5:8] == ["parent", "1:", "handle"] and "12500b" in tbf
    assert "676b" in Conditions.parse("mtu=576,rate=1mbit").egress_commands("eth0")[0]
    assert Conditions.parse("mtu=576").link_commands("eth0") == [["ip", "link", "set", "dev", "eth0", "mtu", "576"]]
