"""Packets: tcpdump around a test (capture, tap), reading its pcap (pcap), judging TCP connections
(tcp) and printing them Wireshark's way (table). Linear in the number of packets throughout.
"""
