#!/bin/sh
# Creates the org salt on first start (32 random bytes, kept on the volume),
# then runs the command. The salt keys every org_key: back it up.
set -eu
salt=/var/lib/warmline/org_salt
if [ ! -s "$salt" ]; then
  umask 077
  head -c 32 /dev/urandom > "$salt"
  echo "warmline: created $salt" >&2
fi
exec "$@"
