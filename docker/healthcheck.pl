#!/usr/bin/perl
# Docker health check for xsgw: one SIP OPTIONS over UDP to the gateway's SIP
# listener, healthy when it answers 200 within two seconds. It goes through the
# gateway's loop and SIP stack like real traffic, but opens no XMPP stream and
# logs nothing above debug. XSGW_HEALTH_ADDR overrides 127.0.0.1:5060. The
# policy's sip.trusted must include 127.0.0.1 (the default, the next hop's
# addresses, may not): an untrusted source gets 403, which counts as unhealthy.
use strict;
use warnings;
use IO::Socket::INET;

my $addr = $ENV{XSGW_HEALTH_ADDR} || "127.0.0.1:5060";
my $s = IO::Socket::INET->new(PeerAddr => $addr, Proto => "udp") or exit 1;
my $id = "health-$$-" . time;
my $local = $s->sockhost . ":" . $s->sockport;
$s->send("OPTIONS sip:$addr SIP/2.0\r\n"
    . "Via: SIP/2.0/UDP $local;branch=z9hG4bK$id;rport\r\n"
    . "From: <sip:health\@localhost>;tag=$id\r\nTo: <sip:$addr>\r\n"
    . "Call-ID: $id\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    or exit 1;
my $r = "";
eval {
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm 2;
    $s->recv($r, 4096);
    alarm 0;
};
exit($r =~ m{^SIP/2\.0 200 } ? 0 : 1);
