#!/bin/sh
# Install dynamips from Debian's non-free component.
#
# Debian ships dynamips in "non-free", which the default apt sources leave out.
# This adds "non-free" to the Components: line of the existing bookworm entry
# (the one whose Suites are "bookworm bookworm-updates") and installs the
# package. Running it again changes nothing. No mirror host name is written.
set -eu

SOURCES=/etc/apt/sources.list.d/debian.sources

if command -v dynamips >/dev/null 2>&1; then
    echo "dynamips already installed: $(command -v dynamips)"
    exit 0
fi

if [ -f "$SOURCES" ]; then
    # Only touch the stanza whose Suites line is "bookworm bookworm-updates",
    # and only when its Components line lacks non-free.
    awk '
        /^$/ { in_main = 0 }
        /^Suites:[[:space:]]*bookworm[[:space:]]+bookworm-updates[[:space:]]*$/ { in_main = 1 }
        {
            if (in_main && $0 ~ /^Components:/ && $0 !~ /(^|[[:space:]])non-free([[:space:]]|$)/) {
                $0 = $0 " non-free"
            }
            print
        }
    ' "$SOURCES" > "$SOURCES.tmp"
    if cmp -s "$SOURCES" "$SOURCES.tmp"; then
        rm -f "$SOURCES.tmp"
    else
        cat "$SOURCES.tmp" > "$SOURCES"
        rm -f "$SOURCES.tmp"
        echo "enabled non-free in $SOURCES"
    fi
elif [ -f /etc/apt/sources.list ]; then
    echo "no $SOURCES; add 'non-free' to your Debian entry in /etc/apt/sources.list by hand" >&2
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y dynamips
