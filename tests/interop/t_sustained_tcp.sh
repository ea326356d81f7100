#!/usr/bin/env bash
# t_sustained.sh over TCP: the same 60 s of SIP MESSAGEs from sipp through the
# gateway to Prosody with Stream Management, sent over TCP (scenarios
# sustained.prosody_sm_enabled and sustained.sip_to_xmpp_tcp).
XS_IT_SUS_TRANSPORT=tcp exec "$(dirname "$0")/t_sustained.sh" "$@"
