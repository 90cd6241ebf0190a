#!/bin/sh
# Start Redis for the stack: TLS only, the default user switched off, and one ACL user for the
# apps that may touch only keys and channels under the app's prefix, without dangerous commands
# (FLUSHALL, CONFIG, KEYS, DEBUG, ...). The password comes from a file (a compose secret) and
# must be free of whitespace (e.g. `openssl rand -hex 32`). `+time`: the socket-seat scripts read
# Redis's own clock (server/realtime/seats.py); TIME is in no category the app otherwise needs.
#
# Environment (defaults in brackets):
#   REDIS_PASSWORD_FILE [/run/secrets/redis_password]  REDIS_USER [telemed]  REDIS_PREFIX [telemed]
#   REDIS_TLS_DIR [/certs] (ca.pem, server.pem, server.key)  REDIS_TLS_PORT [6379]
#   REDIS_ACL_FILE [/tmp/telemed-users.acl]  REDIS_BIND [* -::*]
# Extra arguments go to redis-server. The deploy tests start Redis with this same script.
set -euf  # -f: no globbing, so "*" in REDIS_BIND stays an address
password_file=${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}
user=${REDIS_USER:-telemed}
prefix=${REDIS_PREFIX:-telemed}
tls_dir=${REDIS_TLS_DIR:-/certs}
acl_file=${REDIS_ACL_FILE:-/tmp/telemed-users.acl}
password=$(tr -d '\r\n' < "$password_file")
case "$password" in
  ""|*" "*|*"	"*) echo "redis-start: the password in $password_file is empty or has whitespace" >&2; exit 2 ;;
esac
umask 077
cat > "$acl_file" <<ACL
user default off
user $user on >$password resetkeys ~$prefix:* resetchannels &$prefix:* -@all +@read +@write +@pubsub +@scripting +@connection +@transaction +time -@dangerous
ACL
# In the redis image this script starts as root: drop to the image's redis user, as its own
# entrypoint would (gosu is in the image); elsewhere (the tests) run as whoever started it.
run_as=""
if [ "$(id -u)" = 0 ] && command -v gosu >/dev/null 2>&1 && id redis >/dev/null 2>&1; then
  chown redis "$acl_file"
  run_as="gosu redis"
fi
exec $run_as redis-server \
  --bind ${REDIS_BIND:-"* -::*"} \
  --port 0 \
  --tls-port "${REDIS_TLS_PORT:-6379}" \
  --tls-cert-file "$tls_dir/server.pem" \
  --tls-key-file "$tls_dir/server.key" \
  --tls-ca-cert-file "$tls_dir/ca.pem" \
  --tls-auth-clients no \
  --tls-protocols "TLSv1.2 TLSv1.3" \
  --aclfile "$acl_file" \
  --save "" --appendonly no \
  "$@"
