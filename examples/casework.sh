#!/usr/bin/env bash
# Casework between two central authorities, through the `rogatory` CLI against real nodes on
# loopback: a consultation over a draft request, a complete MLA case from request to executed
# with its evidence attached,
# an incomplete request sent with a recorded reason and acknowledged with its gaps named, a
# refused extradition request, spontaneous information with use restrictions accepted, and the
# statistics of it all. The README walkthrough is this script; tests/integration run it.
#
#   examples/casework.sh [FOLDER]      (FOLDER: where the nodes live; default a new temp folder)
#
# Environment: ROGATORY (the command, default `rogatory`), ROGATORY_PORT_BASE (default 9440;
# the nodes use BASE..BASE+3).
set -euo pipefail

ROGATORY=${ROGATORY:-rogatory}
BASE=${ROGATORY_PORT_BASE:-9440}
REQUESTS=$(cd "$(dirname "$0")" && pwd)/requests
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK" && cd "$WORK"
export ROGATORY_PASSPHRASE='a long passphrase for the key store'
export ROGATORY_SECRETARIAT_PASSPHRASE='another one, for the secretariat keys'

rg() { "$ROGATORY" "$@"; }
step() { printf '\n=== %s\n' "$*"; }
# The id of the newest received message of a kind: inbox columns are id, day, time, from, kind.
newest() { rg inbox --home "$1" --limit 1000 | awk -v k="$2" '$5 == k { id = $1 } END { print id }'; }
# Wait until a case reaches a state on a node (deliveries are asynchronous). The output is
# read whole, not through `head` or `grep -q`: under pipefail, a reader that stops early can
# make the command fail on a broken pipe, and the state would never seem reached.
until_state() {
    local shown
    for _ in $(seq 200); do
        shown=$(rg case show "$2" --home "$1" 2>/dev/null) || shown=""
        if [[ "${shown%%$'\n'*}" == *" side, $3 since"* ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "case $2 on $1 did not reach $3" >&2
    rg case show "$2" --home "$1" >&2 || true
    return 1
}
until_message() {
    for _ in $(seq 200); do
        [ -n "$(newest "$1" "$2")" ] && return 0
        sleep 0.1
    done
    echo "no $2 reached $1" >&2
    return 1
}

step "Setting up: a secretariat with three keys, two authorities, a directory signed twice"
for i in 1 2 3; do rg directory keygen --out sec$i.key; done > pins.txt
PINS=$(sed 's/^/--secretariat /' pins.txt | tr '\n' ' ')
# shellcheck disable=SC2086  # PINS is a list of options
rg init --home fr --authority FR:MJ --name "Ministère de la Justice" \
    --peer-port "$BASE" --api-port $((BASE + 1)) $PINS --threshold 2 --language fr --language en
# shellcheck disable=SC2086
rg init --home br --authority BR:MJSP --name "Ministério da Justiça e Segurança Pública" \
    --peer-port $((BASE + 2)) --api-port $((BASE + 3)) $PINS --threshold 2 \
    --language pt --language en
rg directory create --federation demo --out directory.json \
    fr/authority-record.json br/authority-record.json
rg directory sign --file directory.json --key sec1.key
rg directory sign --file directory.json --key sec2.key
cp directory.json fr/ && cp directory.json br/

"$ROGATORY" serve --home fr > fr.log 2>&1 &
"$ROGATORY" serve --home br > br.log 2>&1 &
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for home in fr br; do
    for _ in $(seq 100); do rg status --home $home > /dev/null 2>&1 && break; sleep 0.1; done
done

step "1. Consultation over a draft request before it is formally sent"
rg consult --home fr --to BR:MJSP --case "BEPI 2025/0142" \
    --text "Before we send it: would Brazil execute a request for these bank records?" \
    --draft "$REQUESTS/mla-incomplete.json"
until_state br "BEPI 2025/0142" consultation
rg consult --home br --to FR:MJ --case "BEPI 2025/0142" \
    --text "Yes, once the account numbers and the dual criminality statement are added."
until_message fr consultation

step "2. A complete MLA request, from sending to executed"
rg request check "$REQUESTS/mla.json" --to BR:MJSP --home fr
rg request send "$REQUESTS/mla.json" --to BR:MJSP --home fr
until_state br "BEPI 2025/0142" delivered
REQUEST=$(newest br request)
rg show "$REQUEST" --home br | sed -n 1,12p      # the first opening sends FR a retrieval receipt
rg case acknowledge "BEPI 2025/0142" --reference "DRCI 2025/0077" --home br
rg case ask "BEPI 2025/0142" --question "Which months of statements are needed?" --home br
until_state fr "BEPI 2025/0142" additional-information-requested
rg case answer "BEPI 2025/0142" --text "January 2023 to June 2024." --home fr
until_state br "BEPI 2025/0142" in-execution
rg case status "BEPI 2025/0142" --text "Court order obtained; bank served." --home br
rg case outcome "BEPI 2025/0142" --partial --summary "Statements of account 1 returned." \
    --home br
until_state fr "BEPI 2025/0142" partially-executed
# The final outcome carries the evidence: files streamed encrypted beside the envelope.
head -c 3000000 /dev/urandom > statements-2023-2024.pdf
printf 'name,role\nA. Example,account holder\n' > kyc-file.csv
rg case outcome "BEPI 2025/0142" --summary "All statements and the KYC file returned." \
    --attach statements-2023-2024.pdf --attach kyc-file.csv --wait --home br
until_state fr "BEPI 2025/0142" executed
rg case show "BEPI 2025/0142" --home fr
OUTCOME=$(newest fr outcome)
rg show "$OUTCOME" --home fr --save-attachments evidence | tail -2
cmp statements-2023-2024.pdf evidence/statements-2023-2024.pdf
if rg show "$OUTCOME" --home fr --save-attachments evidence > /dev/null; then
    echo "an attachment overwrote a file" >&2; exit 1
fi

step "3. An incomplete request: blocked, then sent with a recorded reason; the answer names the gaps"
if rg request send "$REQUESTS/mla-incomplete.json" --to BR:MJSP --home fr; then
    echo "an incomplete request was sent without a reason" >&2; exit 1
fi
rg request send "$REQUESTS/mla-incomplete.json" --to BR:MJSP --home fr \
    --override-reason "Assets about to move; the account numbers follow within 48 hours."
until_state br "BEPI 2025/0143" delivered
rg case acknowledge "BEPI 2025/0143" --reference "DRCI 2025/0078" --home br
until_state fr "BEPI 2025/0143" acknowledged
rg case show "BEPI 2025/0143" --home fr        # the gaps Brazil named, and the override

step "4. An extradition request, refused with its grounds"
rg request send "$REQUESTS/extradition.json" --to BR:MJSP --home fr
until_state br "BEPI 2025/0188" delivered
rg case acknowledge "BEPI 2025/0188" --reference "DRCI 2025/0091" --home br
rg case refuse "BEPI 2025/0188" --ground nationality \
    --explanation "The person sought is a Brazilian national (Constitution, art. 5, LI)." \
    --home br
until_state fr "BEPI 2025/0188" refused
if rg case outcome "BEPI 2025/0188" --summary "too late" --home br; then
    echo "an outcome was sent on a refused case" >&2; exit 1
fi
rg case show "BEPI 2025/0188" --home fr

step "5. Spontaneous information under use restrictions, withheld until they are accepted"
rg spontaneous --home br --to FR:MJ --confidential \
    --restriction "Only for the investigation BEPI 2025/0142" \
    --restriction "Not to be disclosed to the persons concerned without consent" \
    --designated-receiver "Head of the Financial Crime Unit" \
    --information "Account 2 at the same bank received EUR 1.2 million from the suspects."
until_message fr spontaneous-information
INFO=$(newest fr spontaneous-information)
rg show "$INFO" --home fr                     # conditions only: the content is withheld
rg show "$INFO" --home fr --as-receiver | tail -3
rg conditions accept "$INFO" --home fr --as-receiver
rg show "$INFO" --home fr | tail -3           # released to the unit once accepted
for _ in $(seq 100); do
    [[ "$(rg conditions list --home br)" == *" accepted "* ]] && break
    sleep 0.1
done
rg conditions list --home br

step "6. Where every case stands, and the statistics a head of unit reports"
rg cases --home fr
rg cases --home fr --overdue || true     # exits 1 when any case is late: for monitoring
rg stats --home fr --out stats --charts png
rg stats --home br
echo
echo "casework done in $WORK"
