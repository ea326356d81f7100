#!/usr/bin/env bash
# Builds the test PKI every TLS test uses, with openssl, into DIR:
#   ca.pem / ca.key            "Test Root CA": the trust anchor tests configure
#   other-ca.pem / other-ca.key "Other CA": a CA nobody trusts
#   <stem>.pem / <stem>.key    leaf certificates (EC P-256), for each NAME given
#                              (default: sip.test xmpp.test ejab.test):
#     NAME            valid, SAN dNSName NAME, serverAuth+clientAuth, by ca
#     NAME-expired    valid dates in the past (2020-2021)
#     NAME-future     valid from 2090
#     NAME-wrongname  SAN wrong.NAME only
#     NAME-nosan      no subjectAltName, CN=NAME (must not match: no CN fallback)
#     NAME-self       self-signed, SAN NAME
#     NAME-otherca    SAN NAME, signed by other-ca
#     NAME-serveronly SAN NAME, extendedKeyUsage serverAuth only
#   wild-NAME.pem/key  SAN *.NAME (matches a.NAME, not NAME, not a.b.NAME)
#   int.NAME.pem/key   SAN int.NAME ("the certificate of the internal name")
#   <stem>-chain.pem   leaf followed by ca.pem, for servers that send the chain
# Usage: make_test_pki.sh DIR [NAME...]. Idempotent: an existing DIR/ca.pem is
# kept with everything else in DIR, so several tests can share one directory.
set -euo pipefail
dir=${1:?usage: make_test_pki.sh DIR [NAME...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(sip.test xmpp.test ejab.test)
mkdir -p "$dir"
cd "$dir"
[ -e ca.pem ] && exit 0
umask 077

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

make_ca() { # stem CN
    ec_key "$1.key"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 3650 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.pem" 2>/dev/null
    mkdir -p "$1.db"
    : >"$1.db/index.txt"
    echo 1000 >"$1.db/serial"
}

# openssl ca, not x509 -req: only it takes arbitrary start and end dates.
sign() { # stem ca subject ext-lines start end
    local stem=$1 ca=$2 subj=$3 ext=$4 start=$5 end=$6
    ec_key "$stem.key"
    openssl req -new -key "$stem.key" -subj "$subj" -out "$stem.csr" 2>/dev/null
    cat >"$stem.cnf" <<CNF
[ ca ]
default_ca = test
[ test ]
database = $ca.db/index.txt
serial = $ca.db/serial
new_certs_dir = $ca.db
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[ any ]
commonName = supplied
[ ext ]
$ext
CNF
    openssl ca -batch -config "$stem.cnf" -extensions ext -cert "$ca.pem" -keyfile "$ca.key" \
        -startdate "$start" -enddate "$end" -in "$stem.csr" -out "$stem.pem" -notext \
        >/dev/null 2>&1
    rm -f "$stem.csr" "$stem.cnf"
    cat "$stem.pem" ca.pem >"$stem-chain.pem"
}

now=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)
later=$(date -u -d '+5 years' +%Y%m%d%H%M%SZ)
leaf_ext() { # san eku
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\n'
    printf 'extendedKeyUsage=%s\n' "${2:-serverAuth,clientAuth}"
    [ -n "$1" ] && printf 'subjectAltName=%s\n' "$1"
    return 0
}

make_ca ca "Test Root CA"
make_ca other-ca "Other CA"
for n in "${names[@]}"; do
    sign "$n" ca "/CN=$n" "$(leaf_ext "DNS:$n")" "$now" "$later"
    sign "$n-expired" ca "/CN=$n" "$(leaf_ext "DNS:$n")" 20200101000000Z 20210101000000Z
    sign "$n-future" ca "/CN=$n" "$(leaf_ext "DNS:$n")" 20900101000000Z 20950101000000Z
    sign "$n-wrongname" ca "/CN=wrong.$n" "$(leaf_ext "DNS:wrong.$n")" "$now" "$later"
    sign "$n-nosan" ca "/CN=$n" "$(leaf_ext "")" "$now" "$later"
    sign "$n-otherca" other-ca "/CN=$n" "$(leaf_ext "DNS:$n")" "$now" "$later"
    sign "$n-serveronly" ca "/CN=$n" "$(leaf_ext "DNS:$n" serverAuth)" "$now" "$later"
    sign "wild-$n" ca "/CN=*.$n" "$(leaf_ext "DNS:*.$n")" "$now" "$later"
    sign "int.$n" ca "/CN=int.$n" "$(leaf_ext "DNS:int.$n")" "$now" "$later"
    ec_key "$n-self.key"
    openssl req -x509 -new -key "$n-self.key" -subj "/CN=$n" -days 365 -sha256 \
        -addext "subjectAltName=DNS:$n" -addext "extendedKeyUsage=serverAuth,clientAuth" \
        -out "$n-self.pem" 2>/dev/null
done
chmod 0644 ./*.pem
chmod 0600 ./*.key
