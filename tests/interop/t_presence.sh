#!/usr/bin/env bash
# Issue 7, presence across the gateway (RFC 8048) with real peers: Kamailio is the presence
# server of sip.test (presence + presence_xml over SQLite, conf/kamailio-presence.cfg.in),
# SIP users are sip_ua.py (REGISTER, PUBLISH PIDF+RPID, SUBSCRIBE, NOTIFY logged), XMPP users
# are presence_client.py on Prosody (xmpp.test) and ejabberd (ejab.test). The gateway runs
# conf/policy-presence.lua.in (expires 20 s, min 5 s, a SQLite store in the temp directory).
#
# Users: alice, alice's second resource and frank (never subscribed: he must see nothing) on
# Prosody, ella on ejabberd; carol, dan and erin are SIP UAs on 127.0.0.6 registered at
# Kamailio; grace@sip.test is baresip (a real UA: its presence module SUBSCRIBEs to alice and
# PUBLISHes its own state, read and driven through ctrl_tcp with baresip_ctl.py); denied@sip.test
# is refused by Kamailio with 403, gone@sip.test with 404.
#
# presence.harness_kamailio checks Kamailio's presence server without the gateway (dave
# PUBLISHes, vera SUBSCRIBEs and gets the PIDF); it counts on run.sh's harness line. Each
# gateway scenario compares the exact presence (show, status, basic, note, activities) and
# that nothing arrived where nothing should. Consecutive identical presence updates are
# compared once (a refresh may repeat the current state; RFC 6121 allows it).
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/presence.sh"

it_setup presence presence.harness_kamailio presence.xmpp_subscribes_sip \
    presence.sip_state_to_xmpp presence.xmpp_denied_by_sip presence.sip_subscribes_xmpp \
    presence.xmpp_state_to_sip presence.xmpp_denies_sip presence.probe presence.refresh \
    presence.sip_expiry presence.ejabberd_xmpp_subscribes_sip \
    presence.ejabberd_sip_subscribes_xmpp presence.gateway_restart \
    presence.xmpp_unsubscribes_sip presence.sip_unsubscribes_xmpp presence.no_leak \
    presence.baresip_watches_xmpp presence.xmpp_watches_baresip presence.min_expires_423 \
    presence.gateway_crash

. "$(dirname "$0")/ejabberd.sh"
trap ej_exit EXIT
tab=$'\t'
A=sip:alice@xmpp.test

# collapse: consecutive identical lines once.
collapse() { uniq; }

# presence_from NAME BARE-JID [SINCE]: NAME's presence lines from BARE-JID, collapsed.
presence_from() { pr_summary "$1" presence "${3:-0}" | grep -F -- "$2$tab" | collapse; }
# settled NAME BARE-JID [SINCE]: presence_from without bare "unavailable" lines (no show, no
# status): the answer to a server's probe sent before the gateway holds any state for the
# contact is legitimately "unavailable" (RFC 6121 4.3.2), and the state follows.
settled() { presence_from "$@" | grep -vxF -- "$2${tab}unavailable${tab}-${tab}-"; }
# subs_from NAME BARE-JID [SINCE]: NAME's subscription stanzas from BARE-JID.
subs_from() { pr_summary "$1" subscription "${3:-0}" | grep -F -- "$2$tab"; }
# notifies NAME [SINCE]: NAME's NOTIFYs (collapsed).
notifies() { pr_summary "$1" notify "${2:-0}" | collapse; }
# kam_subscribes FROM TO: Kamailio's SUBSCRIBE log lines FROM -> TO (initial and in-dialog).
kam_subscribes() {
    grep -E "ev=kam\.subscribe .*from=$1 to=$2 " "$IT_TMP/kamailio.err" 2>/dev/null
}
# expect NAME WHAT GOT WANT: pass when equal, else fail with both.
expect() {
    if [ "$3" = "$4" ]; then
        it_pass "$1"
    else
        it_fail "$1" "$2: got [${3:-nothing}], wanted [$4]"
    fi
}
# oneline TEXT: newlines as " / " for FAIL lines.
oneline() { printf '%s' "$1" | sed ':a;N;$!ba;s/\n/ \/ /g'; }

have_pr=1
pr_have_presence_server || have_pr=0
if [ $have_pr = 0 ]; then
    for s in "${IT_SCENARIOS[@]}"; do
        it_skip "$s" "Kamailio's presence/db_sqlite modules or sqlite3 are missing (deps.sh)"
    done
    exit 0
fi

# The group's DNS: ejabberd.sh's (xmpp.test, sip.test, gw.sip.test, ejab.test).
ej_dns_start || it_fail_rest "dnsmasq did not answer on 127.0.0.53"
pr_kamailio_start || it_fail_rest "Kamailio did not start (kamailio.err)"

# ---- presence.harness_kamailio: Kamailio's presence server on its own ------------------
pr_ua dave dave 127.0.0.6:5094 --do register \
    --do "publish open 'note=in the lab' lang=fr activities=meeting"
pr_ua vera vera 127.0.0.6:5095
pr_wait dave response 2 10
pr_do vera subscribe sip:dave@sip.test expires=60
pr_wait vera notify 1 10
pr_do dave publish closed "note=gone home"
pr_do vera subscribe sip:denied@sip.test
# One at a time: Kamailio may answer two requests sent together in either order.
pr_wait vera response 2 10
pr_do vera subscribe sip:brief@sip.test expires=10
pr_wait vera response 3 10
pr_wait vera notify 2 10
pr_do vera unsubscribe sip:dave@sip.test
pr_wait vera notify 3 10
got=$(pr_summary dave response; pr_summary vera response; notifies vera)
want="REGISTER${tab}sip:sip.test${tab}200
PUBLISH${tab}sip:dave@sip.test${tab}200
PUBLISH${tab}sip:dave@sip.test${tab}200
SUBSCRIBE${tab}sip:dave@sip.test${tab}200
SUBSCRIBE${tab}sip:denied@sip.test${tab}403
SUBSCRIBE${tab}sip:brief@sip.test${tab}423
SUBSCRIBE${tab}sip:dave@sip.test${tab}200
sip:dave@sip.test${tab}active${tab}open${tab}[fr]in the lab${tab}meeting
sip:dave@sip.test${tab}active${tab}closed${tab}[-]gone home${tab}-
sip:dave@sip.test${tab}terminated;reason=timeout${tab}closed${tab}[-]gone home${tab}-"
expect presence.harness_kamailio "Kamailio's answers to dave and vera" "$got" "$want"
it_stop dave
it_stop vera

# ---- the world: Prosody, ejabberd, the gateway, the clients ----------------------------
it_have_gateway || it_fail_rest "no gateway binary at $XSGW (build it or set XSGW)"
it_prosody_start || it_fail_rest "Prosody did not start (prosody.log, prosodyctl.log)"
nsx prosodyctl --config "$IT_TMP/prosody/prosody.cfg.lua" register frank xmpp.test \
    "$IT_PASSWORD" >>"$IT_TMP/prosodyctl.log" 2>&1 || it_fail_rest "prosodyctl register frank"
have_ej=0
if ej_installed; then
    ej_start && have_ej=1
fi
partners='partner "xmpp.test" { tls = "required", dialback = true }'
[ $have_ej = 1 ] && partners+=" partner \"$EJ_DOMAIN\" { tls = \"required\", dialback = true }"
it_policy "$IT_TMP/policy.lua" policy-presence.lua.in udp:127.0.0.4:5060 "$partners"
sed -i "s|@STORE@|$IT_TMP/presence-store.sqlite|" "$IT_TMP/policy.lua"
it_gateway_start "$IT_TMP/policy.lua" ||
    it_fail_rest "the gateway did not log ev=gateway.ready within 15 s"

pr_ua carol carol 127.0.0.6:5096 --do register \
    --do "publish open 'note=at my desk' lang=fr" || it_fail_rest "carol's UA did not start"
pr_ua dan dan 127.0.0.6:5097 --do register || it_fail_rest "dan's UA did not start"
pr_ua erin erin 127.0.0.6:5098 --do register || it_fail_rest "erin's UA did not start"
pr_xmpp alice alice@xmpp.test --no-initial --do "presence 'status=alice here' lang=fr" ||
    it_fail_rest "alice could not log in: $(tail -n 2 "$IT_TMP/alice.out")"
pr_xmpp frank frank@xmpp.test --status "frank here" ||
    it_fail_rest "frank could not log in: $(tail -n 2 "$IT_TMP/frank.out")"
pr_wait carol response 2 10 || it_fail_rest "carol did not register and publish"

# ---- story 1: alice adds carol@sip.test ------------------------------------------------
pr_do alice subscribe carol@sip.test
pr_wait_for alice subscription "carol@sip.test${tab}subscribed" 20 &&
    pr_wait_for alice presence "carol@sip.test${tab}available${tab}-${tab}at my desk" 10
got=$(subs_from alice carol@sip.test; settled alice carol@sip.test | uniq)
want="carol@sip.test${tab}subscribed
carol@sip.test${tab}available${tab}-${tab}at my desk"
sub=$(kam_subscribes $A sip:carol@sip.test | head -n 1)
if [ "$got" != "$want" ]; then
    it_fail presence.xmpp_subscribes_sip "alice got [$(oneline "$got")], wanted [$(oneline "$want")]; Kamailio: ${sub:-no SUBSCRIBE from $A}"
elif ! echo "$sub" | grep -q 'expires=20 event=presence'; then
    it_fail presence.xmpp_subscribes_sip "Kamailio's SUBSCRIBE line: [${sub:-none}], wanted expires=20 event=presence"
elif ! grep -q '"lang": "fr"' <(grep '"from": "carol@sip.test' "$IT_TMP/alice.out"); then
    it_fail presence.xmpp_subscribes_sip "carol's status reached alice without xml:lang='fr'"
else
    it_pass presence.xmpp_subscribes_sip
fi

# ---- story 1/4: carol's state changes reach alice, mapped ------------------------------
m=$(pr_mark alice)
# Each step waits for the one before, so a gateway that carries nothing fails in 10 s.
pr_do carol publish open "note=back in 5" activities=away
pr_wait_for alice presence "carol@sip.test${tab}available${tab}away${tab}back in 5" 10 "$m" &&
    pr_do carol publish open "note=on a call" activities=busy &&
    pr_wait_for alice presence "carol@sip.test${tab}available${tab}dnd${tab}on a call" 10 "$m" &&
    pr_do carol publish closed "note=gone home" &&
    pr_wait_for alice presence "carol@sip.test${tab}unavailable${tab}-${tab}gone home" 10 "$m"
# carol's state for the scenarios that follow, whatever happened above.
pr_do carol publish open "note=at my desk" lang=fr
pr_wait_for alice presence "carol@sip.test${tab}available${tab}-${tab}at my desk" 10 "$m"
got=$(presence_from alice carol@sip.test "$m")
want="carol@sip.test${tab}available${tab}away${tab}back in 5
carol@sip.test${tab}available${tab}dnd${tab}on a call
carol@sip.test${tab}unavailable${tab}-${tab}gone home
carol@sip.test${tab}available${tab}-${tab}at my desk"
expect presence.sip_state_to_xmpp "alice's presence from carol@sip.test" "$(oneline "$got")" \
    "$(oneline "$want")"

# ---- story 1: refused by the presence server (403, 404) --------------------------------
m=$(pr_mark alice)
pr_do alice subscribe denied@sip.test
pr_do alice subscribe gone@sip.test
pr_wait_for alice subscription "gone@sip.test${tab}unsubscribed" 15 "$m" &&
    pr_wait_for alice subscription "denied@sip.test${tab}unsubscribed" 5 "$m"
got=$(pr_summary alice subscription "$m" | sort; pr_summary alice presence "$m" |
    grep -E '^(denied|gone)@')
want="denied@sip.test${tab}unsubscribed
gone@sip.test${tab}unsubscribed"
# The refusals must be Kamailio's answers to SUBSCRIBEs, not the gateway's own.
refused=$(grep -oE "ev=kam\.subscribe_refused code=[0-9]+ ruri=sip:(denied|gone)@sip\.test from=$A" \
    "$IT_TMP/kamailio.err" | cut -d' ' -f2-3 | sort | tr '\n' ' ')
if [ "$refused" != "code=403 ruri=sip:denied@sip.test code=404 ruri=sip:gone@sip.test " ]; then
    it_fail presence.xmpp_denied_by_sip "Kamailio refused [${refused:-no SUBSCRIBE from $A}], wanted 403 for denied@ and 404 for gone@ (alice got [$(oneline "$got")])"
else
    expect presence.xmpp_denied_by_sip "alice's answers for denied@ and gone@sip.test" \
        "$(oneline "$got")" "$(oneline "$want")"
fi

# ---- RFC 6665 4.2.1.1: Kamailio answers 423 (Min-Expires: 30) to the policy's 20 s; the
# gateway subscribes again with 30 and alice's subscription is approved ------------------
m=$(pr_mark alice)
pr_do alice subscribe brief@sip.test
pr_wait_for alice subscription "brief@sip.test${tab}subscribed" 15 "$m"
got=$(grep -oE "ev=kam\.subscribe(_refused code=423)? ruri=sip:brief@sip\.test from=$A( to=sip:brief@sip\.test)? expires=[0-9]+" \
    "$IT_TMP/kamailio.err" | sed -E 's/ ruri=.* expires=/ expires=/' | head -n 2)
got+="
$(subs_from alice brief@sip.test "$m")"
want="ev=kam.subscribe_refused code=423 expires=20
ev=kam.subscribe expires=30
brief@sip.test${tab}subscribed"
expect presence.min_expires_423 "Kamailio's log and alice's answer for brief@sip.test" \
    "$(oneline "$got")" "$(oneline "$want")"

# ---- story 2: carol (SIP) subscribes to alice; alice approves --------------------------
t_carol_sub=$(date +%s)
pr_do carol subscribe $A expires=20
pr_wait_for alice subscription "carol@sip.test${tab}subscribe" 20 &&
    pr_do alice approve carol@sip.test &&
    pr_wait_for carol notify "$A${tab}active${tab}open${tab}[fr]alice here${tab}-" 15
resp=$(pr_summary carol response | grep -F "SUBSCRIBE${tab}$A${tab}" | head -n 1)
first=$(notifies carol | head -n 1 | cut -f 2)
last=$(notifies carol | tail -n 1)
if ! [[ $resp =~ $'\t'20[02]$ ]]; then
    it_fail presence.sip_subscribes_xmpp "carol's SUBSCRIBE got [${resp:-no answer}], wanted 200 or 202"
elif [ "$first" != pending ]; then
    it_fail presence.sip_subscribes_xmpp "carol's first NOTIFY was [${first:-none}], wanted pending"
elif [ "$last" != "$A${tab}active${tab}open${tab}[fr]alice here${tab}-" ]; then
    it_fail presence.sip_subscribes_xmpp "carol's NOTIFYs: [$(oneline "$(notifies carol)")]"
elif ! grep -q "ev=kam.to_gateway method=SUBSCRIBE ruri=$A" "$IT_TMP/kamailio.err"; then
    it_fail presence.sip_subscribes_xmpp "Kamailio did not forward carol's SUBSCRIBE to the gateway"
else
    it_pass presence.sip_subscribes_xmpp
fi

# ---- story 2/4: alice's state changes reach carol as PIDF ------------------------------
m=$(pr_mark carol)
pr_do alice presence show=away "status=lunch" lang=fr
pr_wait_for carol notify "$A${tab}active${tab}open${tab}[fr]lunch${tab}away" 10 "$m" &&
    pr_do alice presence show=dnd "status=focus time" lang=fr &&
    pr_wait_for carol notify "$A${tab}active${tab}open${tab}[fr]focus time${tab}busy" 10 "$m" &&
    pr_do alice unavailable "status=off for a bit" lang=fr &&
    pr_wait_for carol notify "$A${tab}active${tab}closed${tab}[fr]off for a bit${tab}-" 10 "$m"
pr_do alice presence "status=alice here" lang=fr
pr_wait_for carol notify "$A${tab}active${tab}open${tab}[fr]alice here${tab}-" 5 "$m"
got=$(notifies carol "$m")
want="$A${tab}active${tab}open${tab}[fr]lunch${tab}away
$A${tab}active${tab}open${tab}[fr]focus time${tab}busy
$A${tab}active${tab}closed${tab}[fr]off for a bit${tab}-
$A${tab}active${tab}open${tab}[fr]alice here${tab}-"
expect presence.xmpp_state_to_sip "carol's NOTIFYs from alice" "$(oneline "$got")" \
    "$(oneline "$want")"

# ---- story 2: dan subscribes to alice; alice refuses -----------------------------------
pr_do dan subscribe $A expires=60
pr_wait_for alice subscription "dan@sip.test${tab}subscribe" 20 &&
    pr_do alice deny dan@sip.test &&
    pr_wait dan dialog 1 15
m=$(pr_mark dan)
pr_do alice presence "status=not for dan" lang=fr
sleep 3
last=$(notifies dan | grep -v "${tab}pending${tab}" | tail -n 1 | cut -f 1-2)
# A terminated NOTIFY may carry a closed document; it must not carry alice's state.
leak=$(notifies dan | awk -F '\t' '$3 == "open" || $4 != "-"')
later=$(notifies dan "$m")
if [ "$last" != "$A${tab}terminated;reason=rejected" ]; then
    it_fail presence.xmpp_denies_sip "dan's NOTIFYs: [$(oneline "$(notifies dan)")], wanted pending then terminated;reason=rejected"
elif [ -n "$leak$later" ]; then
    it_fail presence.xmpp_denies_sip "alice's presence reached dan: [$(oneline "$leak$later")]"
else
    it_pass presence.xmpp_denies_sip
fi

# ---- story 3: a second resource of alice comes online: Prosody probes carol@sip.test ---
pr_xmpp alice2 alice@xmpp.test --status "alice on her phone"
pr_wait_for alice2 presence "carol@sip.test${tab}available${tab}-${tab}at my desk" 15
got=$(presence_from alice2 carol@sip.test)
expect presence.probe "carol's presence at alice's new resource (probe answered)" "$got" \
    "carol@sip.test${tab}available${tab}-${tab}at my desk"
it_stop alice2

# ---- story 1/2: refreshes past the expiry (20 s), both ways ----------------------------
sleep $((t_carol_sub + 26 - $(date +%s))) 2>/dev/null
m=$(pr_mark alice)
mc=$(pr_mark carol)
pr_do carol publish open "note=after refresh" activities=away
pr_do alice presence "status=alice after refresh" lang=fr
pr_wait_for alice presence "carol@sip.test${tab}available${tab}away${tab}after refresh" 10 "$m" &&
    pr_wait_for carol notify "$A${tab}active${tab}open${tab}[fr]alice after refresh${tab}-" 10 "$mc"
n_gw=$(kam_subscribes $A sip:carol@sip.test | grep -vc 'expires=0 ')
n_ua=$(pr_summary carol refresh | grep -c "^$A$tab")
bad=$(pr_summary carol response | grep -F "SUBSCRIBE${tab}$A${tab}" | grep -vE $'\t20[02]$')
got="$(presence_from alice carol@sip.test "$m")
$(notifies carol "$mc")"
want="carol@sip.test${tab}available${tab}away${tab}after refresh
$A${tab}active${tab}open${tab}[fr]alice after refresh${tab}-"
if [ "${n_gw:-0}" -lt 2 ]; then
    it_fail presence.refresh "Kamailio saw ${n_gw:-0} SUBSCRIBE(s) from alice for carol in 26 s with expires 20 (no refresh)"
elif [ "${n_ua:-0}" -lt 1 ] || [ -n "$bad" ]; then
    it_fail presence.refresh "carol refreshed ${n_ua:-0} time(s); answers not 2xx: [$(oneline "$bad")]"
else
    expect presence.refresh "presence after the refreshes" "$(oneline "$got")" \
        "$(oneline "$want")"
fi

# ---- story 2: erin's subscription to alice expires (10 s, no refresh) ------------------
pr_do erin subscribe $A expires=10 refresh=off
pr_wait_for alice subscription "erin@sip.test${tab}subscribe" 20 &&
    pr_do alice approve erin@sip.test &&
    pr_wait_for erin notify "$A${tab}active${tab}open${tab}[fr]alice after refresh${tab}-" 10 &&
    pr_wait erin dialog 1 25
got=$(notifies erin | grep -v "${tab}pending${tab}" | cut -f 1-2 | uniq | tail -n 2)
want="$A${tab}active
$A${tab}terminated;reason=timeout"
expect presence.sip_expiry "erin's NOTIFYs (subscribed for 10 s)" "$(oneline "$got")" \
    "$(oneline "$want")"

# ---- baresip (grace@sip.test), a real UA, watches alice and is watched by her ----------
# baresip SUBSCRIBEs to its contact alice@xmpp.test at start and shows what it reads from
# the PIDF: Online for open, Busy for rpid:busy, Offline for closed and for rpid:away
# (baresip 1.0 has no Away); it PUBLISHes its own basic open/closed (presence_online,
# presence_offline).
G=sip:grace@sip.test
if ! pr_have_baresip; then
    it_fail presence.baresip_watches_xmpp "baresip or its presence/ctrl_tcp modules are missing (deps.sh)"
    it_fail presence.xmpp_watches_baresip "baresip or its presence/ctrl_tcp modules are missing (deps.sh)"
elif ! pr_baresip grace 127.0.0.6 5099 $A; then
    it_fail presence.baresip_watches_xmpp "baresip did not register at Kamailio (baresip.out)"
    it_fail presence.xmpp_watches_baresip "baresip did not register at Kamailio (baresip.out)"
else
    seen=
    pr_wait_for alice subscription "grace@sip.test${tab}subscribe" 20 &&
        pr_do alice approve grace@sip.test &&
        pr_baresip_wait $A Online 15 && seen+="Online " &&
        pr_do alice presence show=dnd "status=do not disturb" lang=fr &&
        pr_baresip_wait $A Busy 10 && seen+="Busy " &&
        pr_do alice presence show=away "status=away" lang=fr &&
        pr_baresip_wait $A Offline 10 && seen+="Offline(away) " &&
        pr_do alice presence "status=back" lang=fr &&
        pr_baresip_wait $A Online 10 && seen+="Online " &&
        pr_do alice unavailable "status=gone" lang=fr &&
        pr_baresip_wait $A Offline 10 && seen+="Offline "
    pr_do alice presence "status=alice after refresh" lang=fr
    pr_baresip_wait $A Online 10 && seen+="Online"
    expect presence.baresip_watches_xmpp "what baresip showed for alice, step by step" \
        "$seen" "Online Busy Offline(away) Online Offline Online"

    m=$(pr_mark alice)
    pr_do alice subscribe grace@sip.test
    pr_wait_for alice subscription "grace@sip.test${tab}subscribed" 20 &&
        pr_wait_for alice presence "grace@sip.test${tab}available${tab}-${tab}-" 10 "$m" &&
        m2=$(pr_mark alice) && pr_baresip_ctl presence_offline >/dev/null &&
        pr_wait_for alice presence "grace@sip.test${tab}unavailable${tab}-${tab}-" 10 "$m2" &&
        m3=$(pr_mark alice) && pr_baresip_ctl presence_online >/dev/null &&
        pr_wait_for alice presence "grace@sip.test${tab}available${tab}-${tab}-" 10 "$m3"
    got="$(subs_from alice grace@sip.test "$m")
$(presence_from alice grace@sip.test "${m2:-$m}")"
    want="grace@sip.test${tab}subscribed
grace@sip.test${tab}unavailable${tab}-${tab}-
grace@sip.test${tab}available${tab}-${tab}-"
    expect presence.xmpp_watches_baresip "alice's stanzas from grace@sip.test (baresip)" \
        "$(oneline "$got")" "$(oneline "$want")"
fi

# ---- ejabberd: ella adds carol; dan subscribes to ella ---------------------------------
if [ $have_ej = 1 ] && pr_xmpp ella "$EJ_USER@$EJ_DOMAIN" --server $EJ_ADDR --no-initial \
    --do "presence 'status=ella here' lang=fr"; then
    pr_do ella subscribe carol@sip.test
    m=$(pr_mark ella)
    pr_wait_for ella subscription "carol@sip.test${tab}subscribed" 25 &&
        pr_wait_for ella presence "carol@sip.test${tab}available${tab}away${tab}after refresh" 10 &&
        m=$(pr_mark ella) &&
        pr_do carol publish open "note=hello ejabberd" activities=busy &&
        pr_wait_for ella presence "carol@sip.test${tab}available${tab}dnd${tab}hello ejabberd" 10 "$m"
    got=$(subs_from ella carol@sip.test; settled ella carol@sip.test | uniq)
    want="carol@sip.test${tab}subscribed
carol@sip.test${tab}available${tab}away${tab}after refresh
carol@sip.test${tab}available${tab}dnd${tab}hello ejabberd"
    expect presence.ejabberd_xmpp_subscribes_sip "ella's stanzas from carol@sip.test" \
        "$(oneline "$got")" "$(oneline "$want")"

    md=$(pr_mark dan)
    pr_do dan subscribe "sip:$EJ_USER@$EJ_DOMAIN" expires=60
    E="sip:$EJ_USER@$EJ_DOMAIN"
    pr_wait_for ella subscription "dan@sip.test${tab}subscribe" 25 &&
        pr_do ella approve dan@sip.test &&
        pr_wait_for dan notify "$E${tab}active${tab}open${tab}[fr]ella here${tab}-" 15 "$md" &&
        m=$(pr_mark dan) &&
        pr_do ella presence show=away "status=ella away" lang=fr &&
        pr_wait_for dan notify "$E${tab}active${tab}open${tab}[fr]ella away${tab}away" 10 "$m"
    got="$(notifies dan "$md" | grep -v "${tab}pending${tab}")"
    want="$E${tab}active${tab}open${tab}[fr]ella here${tab}-
$E${tab}active${tab}open${tab}[fr]ella away${tab}away"
    expect presence.ejabberd_sip_subscribes_xmpp "dan's NOTIFYs from ella" \
        "$(oneline "$got")" "$(oneline "$want")"
else
    why="ejabberd is not installed or did not start (ejabberd.log, ejabberdctl.log)"
    [ $have_ej = 1 ] && why="ella could not log in: $(tail -n 2 "$IT_TMP/ella.out")"
    it_fail presence.ejabberd_xmpp_subscribes_sip "$why"
    it_fail presence.ejabberd_sip_subscribes_xmpp "$why"
fi

# ---- story 5: the gateway restarts (SIGTERM); presence keeps flowing both ways ----------
# restart_check SCENARIO SIGNAL WORD: stop the gateway with SIGNAL, start it again on the
# same policy and store, then carol's and alice's next changes (notes "... WORD") must cross.
restart_check() {
    local name=$1 sig=$2 word=$3 m mc got want resub
    it_stop xsgw "$sig"
    mv "$IT_TMP/xsgw.err" "$IT_TMP/xsgw-before-$word.err"
    mv "$IT_TMP/xsgw.out" "$IT_TMP/xsgw-before-$word.out" 2>/dev/null
    m=$(pr_mark alice)
    mc=$(pr_mark carol)
    if ! it_gateway_start "$IT_TMP/policy.lua"; then
        it_fail "$name" "the gateway did not come back after SIG$sig (ev=gateway.ready)"
        return
    fi
    sleep 2
    pr_do carol publish open "note=after $word" activities=away
    pr_do alice presence "status=alice after $word" lang=fr
    pr_wait_for alice presence "carol@sip.test${tab}available${tab}away${tab}after $word" 15 "$m" &&
        pr_wait_for carol notify "$A${tab}active${tab}open${tab}[fr]alice after $word${tab}-" 10 "$mc"
    got="$(presence_from alice carol@sip.test "$m" | tail -n 1)
$(notifies carol "$mc" | grep -v "${tab}pending${tab}" | tail -n 1)"
    want="carol@sip.test${tab}available${tab}away${tab}after $word
$A${tab}active${tab}open${tab}[fr]alice after $word${tab}-"
    # Nobody re-subscribes: alice is asked nothing again, carol's dialog never ends, carol's
    # refreshes are answered 2xx by the restarted gateway, and its NOTIFYs keep their CSeq
    # order (carol's UA refuses one that goes backwards, as baresip does).
    resub="$(pr_summary alice subscription "$m")$(pr_summary carol dialog "$mc")"
    resub+="$(pr_summary carol error "$mc")"
    # baresip's dialog (grace watches alice) must have survived too: it refuses a NOTIFY
    # whose CSeq went backwards and the subscription would end.
    if it_running baresip; then
        pr_do alice presence show=dnd "status=busy after $word" lang=fr
        pr_baresip_wait $A Busy 10 ||
            resub+=" baresip (grace) no longer sees alice's changes ($(grep -ac 'SIP/2.0 500 Bad Sequence' "$IT_TMP/baresip.out") NOTIFY(s) refused with 500 Bad Sequence)"
        pr_do alice presence "status=alice after $word" lang=fr
        pr_baresip_wait $A Online 10
    fi
    resub+=$(pr_summary carol response "$mc" | grep -F "SUBSCRIBE${tab}$A${tab}" |
        grep -vE $'\t20[02]$')
    if [ -n "$resub" ]; then
        it_fail "$name" "the subscriptions did not survive SIG$sig as they were: [$(oneline "$resub")]"
    else
        expect "$name" "presence after SIG$sig and a new start" "$(oneline "$got")" \
            "$(oneline "$want")"
    fi
}
restart_check presence.gateway_restart TERM restart

# ---- story 1: alice removes carol: SUBSCRIBE Expires: 0, nothing after -----------------
pr_do alice unsubscribe carol@sip.test
it_wait_grep "$IT_TMP/kamailio.err" "ev=kam\.subscribe .*from=$A to=sip:carol@sip.test expires=0 " 10
m=$(pr_mark alice)
pr_do carol publish open "note=after removal"
sleep 4
unsub=$(kam_subscribes $A sip:carol@sip.test | grep -c 'expires=0 ')
later=$(presence_from alice carol@sip.test "$m")
if [ "${unsub:-0}" -lt 1 ]; then
    it_fail presence.xmpp_unsubscribes_sip "Kamailio saw no SUBSCRIBE Expires: 0 from alice for carol"
elif [ -n "$later" ]; then
    it_fail presence.xmpp_unsubscribes_sip "carol's presence still reached alice: [$(oneline "$later")]"
else
    it_pass presence.xmpp_unsubscribes_sip
fi

# ---- story 2: carol un-SUBSCRIBEs from alice -------------------------------------------
m=$(pr_mark alice)
mc=$(pr_mark carol)
pr_do carol unsubscribe $A
pr_wait_for alice subscription "carol@sip.test${tab}unsubscribe" 15 "$m" &&
    pr_wait carol dialog 1 5 "$mc"
m2=$(pr_mark carol)
pr_do alice presence "status=carol must not see this" lang=fr
sleep 3
resp=$(pr_summary carol response "$mc" | tail -n 1)
got="$(subs_from alice carol@sip.test "$m")
$(notifies carol "$mc" | cut -f 1-2 | tail -n 1)"
want="carol@sip.test${tab}unsubscribe
$A${tab}terminated"
later=$(notifies carol "$m2")
if ! [[ $resp =~ $'\t'20[02]$ ]]; then
    it_fail presence.sip_unsubscribes_xmpp "carol's un-SUBSCRIBE got [${resp:-no answer}]"
elif [ -n "$later" ]; then
    it_fail presence.sip_unsubscribes_xmpp "alice's presence still reached carol: [$(oneline "$later")]"
else
    expect presence.sip_unsubscribes_xmpp "after carol's un-SUBSCRIBE" \
        "$(oneline "$(echo "$got" | sed 's/;reason=[a-z]*//')")" "$(oneline "$want")"
fi

# ---- RFC 8048 against leaks: frank was never subscribed to anyone ----------------------
got=$(pr_summary frank presence | grep -E '@sip\.test'; pr_summary frank subscription)
expect presence.no_leak "what frank (never subscribed) received from sip.test" "$got" ""

# ---- story 5: a crash (SIGKILL) soon after a clean restart, right after NOTIFYs went out:
# the dialogs still alive here (grace <-> alice) must go on; CSeqs sent since the restart,
# perhaps not yet in the store, must not be used again: the CSeqs of the NOTIFYs baresip
# received must grow in each dialog (RFC 3261 12.2.2) --------------------------------------
if it_running baresip && [ "$(pr_baresip_ctl contacts 2>/dev/null)" = "$A${tab}Online" ]; then
    it_stop xsgw TERM
    mv "$IT_TMP/xsgw.err" "$IT_TMP/xsgw-before-crash-restart.err"
    if it_gateway_start "$IT_TMP/policy.lua"; then
        pr_do alice presence show=dnd "status=just before the crash" lang=fr
        pr_baresip_wait $A Busy 10
        it_stop xsgw KILL
        mv "$IT_TMP/xsgw.err" "$IT_TMP/xsgw-before-crash.err"
        m=$(pr_mark alice)
        if it_gateway_start "$IT_TMP/policy.lua"; then
            sleep 2
            seen=
            pr_do alice presence "status=after the crash" lang=fr &&
                pr_baresip_wait $A Online 10 && seen+="Online " &&
                pr_do alice presence show=dnd "status=busy after the crash" lang=fr &&
                pr_baresip_wait $A Busy 10 && seen+="Busy " &&
                pr_baresip_ctl presence_offline >/dev/null &&
                pr_wait_for alice presence "grace@sip.test${tab}unavailable${tab}-${tab}-" 10 "$m" &&
                seen+="grace-unavailable"
            bad=$(pr_baresip_notify_cseq_faults | tr '\n' ' ')
            got="$seen; NOTIFY CSeqs that did not grow: [$bad]; subscription stanzas at alice: [$(oneline "$(pr_summary alice subscription "$m")")]"
            expect presence.gateway_crash "after SIGKILL and a new start" "$got" \
                "Online Busy grace-unavailable; NOTIFY CSeqs that did not grow: []; subscription stanzas at alice: []"
        else
            it_fail presence.gateway_crash "the gateway did not come back after SIGKILL"
        fi
    else
        it_fail presence.gateway_crash "the gateway did not come back after SIGTERM"
    fi
else
    it_fail presence.gateway_crash "baresip does not watch alice (Online) before the crash: [$(pr_baresip_ctl contacts 2>&1)]"
fi
