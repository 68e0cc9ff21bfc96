"""Magento web STAND-IN: `serve` answers HTTP; `cli setup:install …` checks the wiring and records the install
(with the cache and session backends it was given, as env.php would)."""

import html
import json
import os
import socket
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Where the real install keeps env.php (app/etc/env/, the store's `env` volume), so it survives an update.
STATE = "/var/www/html/app/etc/env/standin-install.json"


def check_db() -> str:
    with socket.create_connection((os.environ["MAGENTO_DB_HOST"], 3306), timeout=3) as conn:
        greeting = conn.recv(128)  # the server's handshake packet carries its version
    return "ok: " + greeting[5:].split(b"\0", 1)[0].decode(errors="replace")


def check_redis() -> str:
    with socket.create_connection((os.environ["MAGENTO_REDIS_HOST"], 6379), timeout=3) as conn:
        conn.sendall(b"PING\r\n")
        reply = conn.recv(16)
    if not reply.startswith(b"+PONG"):
        raise RuntimeError(f"unexpected reply {reply!r}")
    return "ok: PONG"


def redis_ping(host: str, port: int, database: int) -> str:
    with socket.create_connection((host, port), timeout=3) as conn:
        conn.sendall(f"SELECT {database}\r\nPING\r\n".encode())
        replies = b""
        while replies.count(b"\r\n") < 2:
            chunk = conn.recv(64)
            if not chunk:
                break
            replies += chunk
    if replies != b"+OK\r\n+PONG\r\n":
        raise RuntimeError(f"unexpected reply {replies!r}")
    return "ok: PONG"


def installed_redis(section: str) -> str:
    """Where the installed configuration (env.php's `cache` or `session`) points, and whether it answers."""
    config = state().get("env", {}).get(section)
    if not config or config["backend"] != "redis":
        return "files"
    target = f"redis {config['host']}:{config['port']}/{config['database']}"
    try:
        return f"{target} {redis_ping(config['host'], int(config['port']), int(config['database']))}"
    except Exception as exc:  # noqa: BLE001 - reported on the page
        return f"{target} error: {exc}"


def mail_transport() -> str:
    """Where Magento would send mail: system/smtp/* from its CONFIG__DEFAULT__ variables (the stack's), the
    password from env.php (set by `shophosting-magento-install smtp-password`); never the password itself."""
    smtp = {
        name.removeprefix("CONFIG__DEFAULT__SYSTEM__SMTP__").lower(): value
        for name, value in os.environ.items()
        if name.startswith("CONFIG__DEFAULT__SYSTEM__SMTP__")
    }
    if smtp.get("transport") != "smtp":
        return "sendmail"
    password = "set" if state().get("env", {}).get("system", {}).get("smtp/password") else "none"
    return (
        f"smtp {smtp.get('host')}:{smtp.get('port')} ssl={smtp.get('ssl')} auth={smtp.get('auth')}"
        f" user={smtp.get('username', '')} password={password}"
        f" from={os.environ.get('CONFIG__DEFAULT__TRANS_EMAIL__IDENT_GENERAL__EMAIL', '')}"
    )


def check_search() -> str:
    url = f"http://{os.environ['MAGENTO_SEARCH_HOST']}:9200/"
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - the store network only
        info = json.load(response)
    return f"ok: {info['version']['distribution']} {info['version']['number']}"


def wiring() -> dict[str, str]:
    results = {}
    for name, check in (("database", check_db), ("redis", check_redis), ("search", check_search)):
        try:
            results[name] = check()
        except Exception as exc:  # noqa: BLE001 - reported on the page
            results[name] = f"error: {exc}"
    return results


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/admin"):
            self.send_page(
                "<!doctype html><html><head><title>Magento Admin</title></head><body><form method=post>"
                '<input name="login[username]"><input name="login[password]" type=password></form></body></html>'
            )
            return
        title = state().get("title", "Magento stand-in (not installed)")
        checks = {
            **wiring(),
            "cache": installed_redis("cache"),
            "sessions": installed_redis("session"),
            "mail": mail_transport(),
        }
        rows = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in checks.items())
        upgrades = state().get("upgrades", 0)
        self.send_page(
            f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Magento web STAND-IN</p><ul>{rows}"
            f"<li>setup:upgrade runs: {upgrades}</li>"
            f"<li>base URL: {html.escape(state().get('base_url', ''))}</li>"
            f"<li>secure base URL: {html.escape(state().get('secure_base_url', ''))}</li></ul></body></html>"
        )

    def send_page(self, text: str):
        payload = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")  # the page reports live wiring; Varnish must not cache it
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def state() -> dict:
    return json.load(open(STATE)) if os.path.exists(STATE) else {}


# What the stand-in's config:set takes: the store name (install_commands), the relay password (smtp-password).
CONFIG_PATHS = (
    "general/store_information/name",
    "system/smtp/password",
    "web/unsecure/base_url",  # a primary-name change (MagentoStack.url_replace_commands)
    "web/secure/base_url",
)
# The options each command takes besides Symfony Console's global ones, as bin/magento defines them.
COMMAND_OPTIONS = {
    "config:set": {"scope", "scope-code", "lock-env", "le", "lock-config", "lc"},
    "setup:upgrade": {"keep-generated", "safe-mode", "data-restore", "dry-run", "convert-old-scripts"},
    "setup:install": None,  # dozens; the stand-in takes any --name=value
}
GLOBAL_OPTIONS = {"quiet", "q", "verbose", "v", "vv", "vvv", "ansi", "no-ansi", "no-interaction", "n"}


def console_parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """argv as Symfony Console's ArgvInput reads it: a token starting with `-` is an option until a bare
    `--`, after which every token is an argument. So a value that may start with `-` must come after `--`
    or inside `--name=value`."""
    options, arguments, only_arguments = {}, [], False
    for word in args:
        if only_arguments or word == "-" or not word.startswith("-"):
            arguments.append(word)
        elif word == "--":
            only_arguments = True
        elif word.startswith("--"):
            name, _, value = word[2:].partition("=")
            options[name] = value
        else:
            options[word[1:]] = ""
    return options, arguments


def cli(args: list[str]) -> int:
    if not args or args[0] not in COMMAND_OPTIONS:
        print(
            "stand-in bin/magento supports setup:install, setup:upgrade and config:set general/store_information/name",
            file=sys.stderr,
        )
        return 2
    command = args[0]
    options, arguments = console_parse(args[1:])
    if "help" in options or "h" in options:
        print(f"Usage:\n  {command} [options]  (stand-in: nothing done)")  # as Magento: help, exit 0, no change
        return 0
    allowed = COMMAND_OPTIONS[command]
    unknown = [name for name in options if allowed is not None and name not in allowed | GLOBAL_OPTIONS]
    if unknown:
        dashes = "--" if len(unknown[0]) > 1 else "-"
        print(f'The "{dashes}{unknown[0]}" option does not exist.', file=sys.stderr)
        return 1
    if command == "setup:upgrade":
        current = state()
        if not current:
            print("Magento is not installed", file=sys.stderr)
            return 1
        # Counted, so a test sees that an update ran it (and with --keep-generated, as the platform does).
        current["upgrades"] = current.get("upgrades", 0) + 1
        current["last_upgrade_options"] = sorted(options)
        with open(STATE, "w") as handle:
            json.dump(current, handle)
        print(
            'Please re-run Magento compile command. Use the command "setup:di:compile"'
            if "keep-generated" not in options
            else "Nothing to import. (stand-in: schema and data are current)"
        )
        return 0
    if command == "config:set":
        if len(arguments) != 2 or arguments[0] not in CONFIG_PATHS:
            print(f"stand-in config:set takes one of {', '.join(CONFIG_PATHS)} and a value", file=sys.stderr)
            return 1
        current = state()
        if not current:
            print("Magento is not installed", file=sys.stderr)
            return 1
        if arguments[0] == "system/smtp/password":
            if "lock-env" not in options and "le" not in options:
                print("stand-in: system/smtp/password goes into env.php (--lock-env)", file=sys.stderr)
                return 1
            env = current.setdefault("env", {})
            env["system"] = {**env.get("system", {}), "smtp/password": arguments[1]}  # env.php's `system`
        elif arguments[0] == "web/unsecure/base_url":
            current["base_url"] = arguments[1]
        elif arguments[0] == "web/secure/base_url":
            current["secure_base_url"] = arguments[1]
        else:
            current["title"] = arguments[1]
        with open(STATE, "w") as handle:
            json.dump(current, handle)
        print(
            "Value was saved."
            if arguments[0] != "system/smtp/password"
            else "Value was saved in app/etc/env.php and locked."
        )
        return 0
    if arguments:
        print(f'No arguments expected for "setup:install" command, got "{arguments[0]}".', file=sys.stderr)
        return 1
    missing = [
        k
        for k in (
            "base-url",
            "db-host",
            "db-name",
            "db-user",
            "db-password",
            "admin-user",
            "admin-password",
            "admin-email",
            "search-engine",
            "opensearch-host",
        )
        if k not in options
    ]
    if missing:
        print(f"missing options: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = wiring()
    if any(v.startswith("error") for v in results.values()):
        print(f"stand-in setup:install: wiring failed: {results}", file=sys.stderr)
        return 1
    # What setup:install writes into app/etc/env.php for the cache and sessions (files unless told redis).
    env = {
        "cache": {
            "backend": options.get("cache-backend", "file"),
            "host": options.get("cache-backend-redis-server", "127.0.0.1"),
            "port": options.get("cache-backend-redis-port", "6379"),
            "database": options.get("cache-backend-redis-db", "0"),
        },
        "session": {
            "backend": options.get("session-save", "files"),
            "host": options.get("session-save-redis-host", "127.0.0.1"),
            "port": options.get("session-save-redis-port", "6379"),
            "database": options.get("session-save-redis-db", "2"),
        },
    }
    with open(STATE, "w") as handle:
        json.dump({"title": "Magento store", "base_url": options["base-url"], "env": env}, handle)
    print("[SUCCESS]: Magento installation complete. (stand-in: wiring checked, nothing installed)")
    return 0


def install_from_environment() -> int:
    """shophosting-magento-install: `setup:install` with its options from SHOPHOSTING_MAGENTO_INSTALL (a JSON
    object, name -> value), passed to the console in-process; the database password, unless given there, from
    the file MAGENTO_DB_PASSWORD_FILE names (the container's secret). The admin and database passwords never
    appear on a command line, where `ps` on the host shows them to every user."""
    options = json.loads(os.environ.pop("SHOPHOSTING_MAGENTO_INSTALL"))
    if "db-password" not in options and os.environ.get("MAGENTO_DB_PASSWORD_FILE"):
        with open(os.environ["MAGENTO_DB_PASSWORD_FILE"]) as handle:
            options["db-password"] = handle.read().rstrip("\r\n")
    return cli(["setup:install", *(f"--{name}={value}" for name, value in options.items())])


def smtp_password_from_file() -> int:
    """shophosting-magento-install smtp-password: `config:set --lock-env system/smtp/password` with the password
    from the file MAGENTO_SMTP_PASSWORD_FILE names, passed in-process, never on a command line."""
    path = os.environ.get("MAGENTO_SMTP_PASSWORD_FILE", "")
    if not path or not os.access(path, os.R_OK):
        print("MAGENTO_SMTP_PASSWORD_FILE does not name a readable file", file=sys.stderr)
        return 2
    with open(path) as handle:
        password = handle.read().rstrip("\r\n")
    return cli(["config:set", "--lock-env", "--", "system/smtp/password", password])


if __name__ == "__main__":
    if sys.argv[1:3] == ["install", "smtp-password"]:
        sys.exit(smtp_password_from_file())
    if sys.argv[1] == "install":
        sys.exit(install_from_environment())
    if sys.argv[1] == "serve":
        ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("MAGENTO_LISTEN_PORT", "8080"))), Handler).serve_forever()  # noqa: S104
    sys.exit(cli(sys.argv[2:]))
