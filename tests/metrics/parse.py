"""The metrics exposition, read by the Prometheus client library's own
parser: a populated registry (test_metrics --print) must parse, every
family once, with the types and values the unit test set."""
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families


def main(binary):
    text = subprocess.run([binary, "--print"], check=True, capture_output=True,
                          text=True, timeout=30).stdout
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a family appears twice: %r" % names
    by_name = {f.name: f for f in families}
    # The parser drops the _total suffix from a counter's family name.
    assert by_name["xsgw_messages"].type == "counter"
    assert by_name["xsgw_handoff_seconds"].type == "histogram"
    assert by_name["xsgw_streams"].type == "gauge"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families for s in f.samples}

    def value(name, **labels):
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("xsgw_messages_total", partner="a.example", direction="xmpp_to_sip",
                 outcome="delivered", condition="none") == 3
    # Escaped label values come back as they were.
    assert value("xsgw_presence_total", partner='q"uote\\d\nnewline', direction="xmpp_to_sip",
                 outcome="refused", condition="policy-violation") == 1
    assert value("xsgw_build_info", version=by_name["xsgw_build_info"].samples[0]
                 .labels["version"]) == 1
    for d in ("xmpp_to_sip", "sip_to_xmpp"):
        for h in ("xsgw_handoff_seconds", "xsgw_outcome_seconds"):
            buckets = [s for s in by_name[h].samples
                       if s.name == h + "_bucket" and s.labels["direction"] == d]
            bounds = [float(s.labels["le"]) for s in buckets]
            assert bounds == sorted(bounds) and bounds[-1] == float("inf"), bounds
            counts = [s.value for s in buckets]
            assert counts == sorted(counts), counts
            assert counts[-1] == value(h + "_count", direction=d)
    assert value("xsgw_sip_transactions_limit", role="server") == 1000
    assert value("xsgw_policy_generation") == 3
    print("parsed %d families, %d samples" % (len(families), len(samples)))


if __name__ == "__main__":
    main(sys.argv[1])
