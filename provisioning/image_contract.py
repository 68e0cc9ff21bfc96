"""What a store's web image must provide for its stack, stated once, for the local and the production recipes.

The stacks (`stacks/woocommerce.py`, `stacks/magento.py`) run the same steps whatever image the settings name,
so every recipe of a role must keep one contract: the installer where `install_commands` runs it, the object
cache drop-in, the platform's mu-plugins (the mailer), the `*_FILE` password variables, the entrypoint and
command, the port. Each part is checked
against the recipe's Dockerfile and the files it copies (`tests/test_image_contract.py`), and
`images_build --production` checks the production recipes before it builds them.

A part may come from an official base image rather than the recipe (`OFFICIAL_BASES`): what the upstream
image documents and provides (the WordPress image's entrypoint, its `*_FILE` variables and
WORDPRESS_CONFIG_EXTRA) counts as the recipe's own.
"""

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

IMAGES_DIR = Path(settings.BASE_DIR) / "deploy" / "images"

WORDPRESS_INSTALLER = "/usr/local/share/shophosting/wp-install.php"  # what WooCommerceStack.install_commands runs
WORDPRESS_INSTALLER_SOURCE = IMAGES_DIR / "wordpress" / "wp-install.php"
WORDPRESS_UPGRADER = "/usr/local/share/shophosting/wp-upgrade.php"  # what WooCommerceStack.upgrade_commands runs
WORDPRESS_UPGRADER_SOURCE = IMAGES_DIR / "wordpress" / "wp-upgrade.php"
# What WooCommerceStack.url_replace_commands runs after a primary-name change (no wp-cli in the local image).
WORDPRESS_URL_REPLACER = "/usr/local/share/shophosting/wp-search-replace.php"
OBJECT_CACHE_SOURCE = IMAGES_DIR / "wordpress" / "object-cache.php"
# Where a recipe may put the drop-in, and what puts it into the store's wp-content from there.
OBJECT_CACHE_DESTINATIONS = {
    "/usr/src/wordpress/wp-content/object-cache.php": "the official entrypoint's copy of /usr/src/wordpress",
    "/usr/local/share/shophosting/object-cache.php": "the local entrypoint, at every start",
}
# The platform's must-use plugins (the mailer): a directory of the image, where the stack's WPMU_PLUGIN_DIR points.
WORDPRESS_MU_PLUGINS = "/usr/local/share/shophosting/mu-plugins"
WORDPRESS_MU_PLUGINS_SOURCE = IMAGES_DIR / "wordpress" / "mu-plugins"
MAGENTO_INSTALLER_NAME = "shophosting-magento-install"  # run by name (MagentoStack.install_commands)
MAGENTO_INSTALLER = f"/usr/local/bin/{MAGENTO_INSTALLER_NAME}"  # so on the PATH
# `shophosting-magento-install smtp-password`: the relay password from MAGENTO_SMTP_PASSWORD_FILE into env.php.
MAGENTO_INSTALLER_SMTP_PASSWORD = "smtp-password"  # noqa: S105 - a command name, not a password
MAGENTO_CLI = "/var/www/html/bin/magento"
MAGENTO_LISTEN_PORT = "8080"  # stacks/magento.py WEB_PORT
MAGENTO_ENV_DIR = "/var/www/html/app/etc/env"  # the store's `env` volume: env.php outlives the container


@dataclass(frozen=True)
class Recipe:
    """A Dockerfile as far as the contract reads it; `files` are the copied files' text, by destination."""

    name: str
    base: str
    copies: dict[str, Path]  # destination -> source, resolved in the build context
    args: dict[str, str]  # ARG name -> default ("" when none)
    env: dict[str, str]
    entrypoint: list[str] | None
    cmd: list[str] | None
    expose: set[str]
    runs: list[str]  # every RUN instruction, with its flags (--mount=...)

    @property
    def base_repository(self) -> str:
        return self.base.split("@")[0].rsplit(":", 1)[0] if ":" in self.base.split("/")[-1] else self.base

    def copied_text(self, destination: str) -> str:
        source = self.copies.get(destination)
        return source.read_text(errors="replace") if source and source.is_file() else ""


@dataclass(frozen=True)
class Provides:
    """What an official base image brings, per its documentation (docker-library)."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    expose: set[str] = field(default_factory=set)
    features: frozenset[str] = frozenset()


OFFICIAL_BASES = {
    # docker-library/wordpress: docker-entrypoint.sh copies /usr/src/wordpress into /var/www/html and writes
    # wp-config.php from wp-config-docker.php, which reads every WORDPRESS_DB_* as NAME or NAME_FILE
    # (getenv_docker) and evals WORDPRESS_CONFIG_EXTRA.
    "wordpress": Provides(
        entrypoint=["docker-entrypoint.sh"],
        cmd=["apache2-foreground"],
        expose={"80"},
        features=frozenset({"password_files", "config_extra"}),
    ),
    # docker-library/php, the -apache variants.
    "php": Provides(entrypoint=["docker-php-entrypoint"], cmd=["apache2-foreground"], expose={"80"}),
}


def _provides(recipe: Recipe) -> Provides:
    return OFFICIAL_BASES.get(recipe.base_repository, Provides())


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comment lines dropped (as Docker does)."""
    instructions, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def _exec_form(value: str) -> list[str]:
    return json.loads(value) if value.startswith("[") else ["/bin/sh", "-c", value]


def recipe_parse(*, name: str, dockerfile: Path, context: Path) -> Recipe:
    copies, args, env, expose, runs = {}, {}, {}, set(), []
    base, entrypoint, cmd = "", None, None
    for keyword, rest in _instructions(dockerfile.read_text()):
        if keyword == "FROM":
            base = rest.split()[0]
        elif keyword in ("COPY", "ADD"):
            words = [word for word in shlex.split(rest) if not word.startswith("--")]
            for source in words[:-1]:
                copies[words[-1]] = context / source
        elif keyword == "ARG":
            arg_name, _, default = rest.partition("=")
            args[arg_name.strip()] = default.strip()
        elif keyword == "ENV":
            env_name, _, value = rest.partition("=")
            env[env_name.strip()] = value.strip().strip('"')
        elif keyword == "ENTRYPOINT":
            entrypoint = _exec_form(rest)
        elif keyword == "CMD":
            cmd = _exec_form(rest)
        elif keyword == "EXPOSE":
            expose.update(port.split("/")[0] for port in rest.split())
        elif keyword == "RUN":
            runs.append(rest)
    return Recipe(name, base, copies, args, env, entrypoint, cmd, expose, runs)


@dataclass(frozen=True)
class Part:
    what: str
    check: Callable[[Recipe], bool]


def _copies(source: Path, destination: str) -> Callable[[Recipe], bool]:
    return lambda recipe: recipe.copies.get(destination) == source


def _entrypoint_named(basename: str) -> Callable[[Recipe], bool]:
    def check(recipe: Recipe) -> bool:
        entrypoint = recipe.entrypoint if recipe.entrypoint is not None else _provides(recipe).entrypoint
        return bool(entrypoint) and Path(entrypoint[0]).name == basename

    return check


def _cmd_in(*commands: list[str]) -> Callable[[Recipe], bool]:
    return lambda recipe: (recipe.cmd if recipe.cmd is not None else _provides(recipe).cmd) in commands


def _exposes(port: str) -> Callable[[Recipe], bool]:
    return lambda recipe: port in recipe.expose | _provides(recipe).expose


def _object_cache(recipe: Recipe) -> bool:
    placed = [dest for dest, source in recipe.copies.items() if source == OBJECT_CACHE_SOURCE]
    if "/usr/src/wordpress/wp-content/object-cache.php" in placed:
        return recipe.base_repository == "wordpress"  # only the official entrypoint copies that tree
    if "/usr/local/share/shophosting/object-cache.php" in placed and recipe.entrypoint:
        return "/usr/local/share/shophosting/object-cache.php" in recipe.copied_text(recipe.entrypoint[0])
    return False


def _mu_plugins(recipe: Recipe) -> bool:
    """The whole directory, outside /var/www/html: no store volume holds a copy that could go stale."""
    return any(
        source == WORDPRESS_MU_PLUGINS_SOURCE and destination.rstrip("/") == WORDPRESS_MU_PLUGINS
        for destination, source in recipe.copies.items()
    )


def _wp_config_feature(feature: str, marker: str) -> Callable[[Recipe], bool]:
    def check(recipe: Recipe) -> bool:
        return feature in _provides(recipe).features or marker in recipe.copied_text("/var/www/html/wp-config.php")

    return check


def _phpredis(recipe: Recipe) -> bool:
    return any(re.search(r"\bphp-redis\b|pecl install \"?redis", run) for run in recipe.runs)


def _reads_file(variable: str) -> Callable[[Recipe], bool]:
    """Some file the recipe copies reads the variable (the installer, or the script it hands over to)."""
    return lambda recipe: any(variable in recipe.copied_text(destination) for destination in recipe.copies)


def _woocommerce_pinned(recipe: Recipe) -> bool:
    run = " ".join(recipe.runs)
    return (
        bool(recipe.args.get("WOOCOMMERCE_VERSION"))
        and "WOOCOMMERCE_SHA256" in recipe.args
        and "downloads.wordpress.org/plugin/woocommerce.${WOOCOMMERCE_VERSION}.zip" in run
        and re.search(r"\$\{WOOCOMMERCE_SHA256\}.*sha256sum -c", run) is not None
        and "/usr/src/wordpress/wp-content/plugins" in run
    )


def _magento_cli(recipe: Recipe) -> bool:
    composer_into_tree = any("create-project" in run and "/var/www/html" in run for run in recipe.runs)
    return MAGENTO_CLI in recipe.copies or composer_into_tree


def _composer_keys_as_build_secret(recipe: Recipe) -> bool:
    """The repo.magento.com keys reach one RUN as a BuildKit secret, never an ARG, ENV or copied file."""
    secret_run = any(run.startswith("--mount=type=secret,id=composer_auth") for run in recipe.runs)
    leaks = [
        name for name in (*recipe.args, *recipe.env) if re.search(r"AUTH|KEY|TOKEN|PASSWORD", name, re.IGNORECASE)
    ] + [dest for dest in recipe.copies if dest.endswith("auth.json")]
    return secret_run and not leaks


WORDPRESS_CONTRACT = [
    Part(
        f"the installer at {WORDPRESS_INSTALLER} (deploy/images/wordpress/wp-install.php)",
        _copies(WORDPRESS_INSTALLER_SOURCE, WORDPRESS_INSTALLER),
    ),
    Part(
        f"the upgrader at {WORDPRESS_UPGRADER} (deploy/images/wordpress/wp-upgrade.php), run by an update",
        _copies(WORDPRESS_UPGRADER_SOURCE, WORDPRESS_UPGRADER),
    ),
    Part(
        "the object cache drop-in (deploy/images/wordpress/object-cache.php), put into wp-content by the entrypoint",
        _object_cache,
    ),
    Part(
        f"the platform's mu-plugins, the mailer among them, at {WORDPRESS_MU_PLUGINS} (wordpress/mu-plugins)",
        _mu_plugins,
    ),
    Part(
        "wp-config reads WORDPRESS_DB_PASSWORD_FILE (the *_FILE variables)",
        _wp_config_feature("password_files", "_FILE"),
    ),
    Part(
        "wp-config evaluates the stack's WORDPRESS_CONFIG_EXTRA (the hardening, the object cache)",
        _wp_config_feature("config_extra", "eval($shophosting_config_extra)"),
    ),
    Part(
        "no ENV WORDPRESS_CONFIG_EXTRA: the stack sets it for every store, replacing the image's",
        lambda recipe: "WORDPRESS_CONFIG_EXTRA" not in recipe.env,
    ),
    Part("phpredis, for the drop-in", _phpredis),
    Part("ENTRYPOINT docker-entrypoint.sh", _entrypoint_named("docker-entrypoint.sh")),
    Part("CMD Apache in the foreground", _cmd_in(["apache2", "-D", "FOREGROUND"], ["apache2-foreground"])),
    Part("serves on port 80", _exposes("80")),
]
WORDPRESS_PRODUCTION = [
    Part("WooCommerce at a pinned version, checked with sha256sum -c, in the plugins tree", _woocommerce_pinned),
]
MAGENTO_CONTRACT = [
    Part(
        f"shophosting-magento-install on the PATH ({MAGENTO_INSTALLER})",
        lambda recipe: MAGENTO_INSTALLER in recipe.copies,
    ),
    Part(f"bin/magento at {MAGENTO_CLI}", _magento_cli),
    Part(
        "the installer reads the database password from MAGENTO_DB_PASSWORD_FILE",
        _reads_file("MAGENTO_DB_PASSWORD_FILE"),
    ),
    Part(
        "the installer reads setup:install's options from SHOPHOSTING_MAGENTO_INSTALL",
        _reads_file("SHOPHOSTING_MAGENTO_INSTALL"),
    ),
    Part(
        "the installer's smtp-password sets the relay password from MAGENTO_SMTP_PASSWORD_FILE",
        _reads_file("MAGENTO_SMTP_PASSWORD_FILE"),
    ),
    Part(f"serves on port {MAGENTO_LISTEN_PORT} (MAGENTO_LISTEN_PORT)", _exposes(MAGENTO_LISTEN_PORT)),
    Part(
        f"the install's configuration (env.php) in {MAGENTO_ENV_DIR}, the volume an update keeps",
        lambda recipe: any(
            re.search(rf"mkdir -p [^;&]*{re.escape(MAGENTO_ENV_DIR)}(\s|;|$)", run) for run in recipe.runs
        ),
    ),
]
MAGENTO_PRODUCTION = [
    Part("Magento at a pinned version (ARG MAGENTO_VERSION)", lambda recipe: bool(recipe.args.get("MAGENTO_VERSION"))),
    Part(
        "the repo.magento.com keys as a build secret (composer_auth), never in a layer", _composer_keys_as_build_secret
    ),
]


@dataclass(frozen=True)
class RecipeSpec:
    """A recipe under deploy/images/ and the contract it keeps; `context` is its build context."""

    name: str
    parts: list[Part]
    # The production WordPress recipe shares files with the local one (wp-install.php, the drop-in), so it
    # builds from deploy/images/; every other recipe from its own directory.
    shared_context: bool = False

    @property
    def dockerfile(self) -> Path:
        return IMAGES_DIR / self.name / "Dockerfile"

    @property
    def context(self) -> Path:
        return IMAGES_DIR if self.shared_context else IMAGES_DIR / self.name


RECIPES = [
    RecipeSpec("wordpress", WORDPRESS_CONTRACT),
    RecipeSpec("wordpress-official", WORDPRESS_CONTRACT + WORDPRESS_PRODUCTION, shared_context=True),
    RecipeSpec("magento-standin-web", MAGENTO_CONTRACT),
    RecipeSpec("magento-official", MAGENTO_CONTRACT + MAGENTO_PRODUCTION),
]


def recipe_get(name: str) -> RecipeSpec:
    return next(spec for spec in RECIPES if spec.name == name)


def recipe_missing(spec: RecipeSpec, *, dockerfile: Path | None = None) -> list[str]:
    """The parts of its contract the recipe lacks (empty: it keeps the contract). `dockerfile` reads another
    Dockerfile in the recipe's place (a test's altered copy)."""
    recipe = recipe_parse(name=spec.name, dockerfile=dockerfile or spec.dockerfile, context=spec.context)
    return [part.what for part in spec.parts if not part.check(recipe)]
