#!/usr/bin/env bash
# Support lookup: what segmenter currently knows about one customer, read from Redis (SPEC section 7).
#
#   examples/support_lookup.sh CUSTOMER_ID
#
# Prints the customer's record (segmenter:customer:{id}: one tier per dimension, as_of, the features,
# rules_version, version) and the number of customers in each tier of every dimension.
# Environment: SEGMENTER_REDIS_URL (default redis://localhost:6379/0), SEGMENTER_REDIS_PREFIX (default
# segmenter). Needs redis-cli (Debian/Ubuntu: apt-get install redis-tools).
# Exit status: 0 found, 1 no such customer or Redis unreachable, 2 usage.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" || "$1" == -h || "$1" == --help ]]; then
    echo "usage: $0 CUSTOMER_ID" >&2
    exit 2
fi
customer_id=$1
url=${SEGMENTER_REDIS_URL:-redis://localhost:6379/0}
prefix=${SEGMENTER_REDIS_PREFIX:-segmenter}

if ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis-cli not found (Debian/Ubuntu: apt-get install redis-tools)" >&2
    exit 1
fi

rcli() {
    redis-cli --no-auth-warning --raw -u "$url" "$@"
}

if ! rcli PING >/dev/null 2>&1; then
    echo "cannot reach Redis at $(printf '%s' "$url" | sed -E 's#//[^@/]*@#//***@#')" >&2
    exit 1
fi

key="$prefix:customer:$customer_id"
record=$(rcli HGETALL "$key")
if [[ -z "$record" ]]; then
    echo "no customer $customer_id ($key not in Redis)" >&2
    exit 1
fi

echo "customer $customer_id ($key)"
# HGETALL answers field, value, field, value, ... one per line; print them sorted by field.
printf '%s\n' "$record" | paste - - -d $'\t' | sort | while IFS=$'\t' read -r field value; do
    printf '  %-28s %s\n' "$field" "$value"
done

echo "tier counts"
rcli --scan --pattern "$prefix:tier-counts:*" | sort | while read -r counts_key; do
    [[ -n "$counts_key" ]] || continue
    dimension=${counts_key#"$prefix:tier-counts:"}
    line=$(rcli HGETALL "$counts_key" | paste - - -d '=' | sort | paste -s -d ' ')
    printf '  %-28s %s\n' "$dimension" "$line"
done
