#!/bin/bash
set -euo pipefail
: "${VARNISH_BACKEND_HOST:?VARNISH_BACKEND_HOST is required}"
: "${VARNISH_BACKEND_PORT:=8080}"
[[ "$VARNISH_BACKEND_HOST" =~ ^[A-Za-z0-9.-]+$ && "$VARNISH_BACKEND_PORT" =~ ^[0-9]+$ ]] \
    || { echo "invalid backend $VARNISH_BACKEND_HOST:$VARNISH_BACKEND_PORT" >&2; exit 2; }
cat > /etc/varnish/shophosting.vcl <<VCL
vcl 4.1;
backend default {
    .host = "$VARNISH_BACKEND_HOST";
    .port = "$VARNISH_BACKEND_PORT";
    .connect_timeout = 5s;
    .first_byte_timeout = 120s;
}
sub vcl_deliver {
    set resp.http.X-Varnish-Backend = "$VARNISH_BACKEND_HOST:$VARNISH_BACKEND_PORT";
}
VCL
exec "$@"
