#!/usr/bin/env bash
# The translation catalogues (translations/<catalogue>/LC_MESSAGES/messages.po), see README "Languages".
#   deploy/translations.sh update    extract every marked string (babel.cfg) into translations/messages.pot,
#                                    merge it into each catalogue (new entries empty, changed ones fuzzy),
#                                    then write sr_Cyrl from sr_Latn (deploy/sr_cyrl.py). Safe to re-run.
#   deploy/translations.sh compile   .po → .mo (not committed; `make run` and `make test` do it)
#   deploy/translations.sh missing   list untranslated and fuzzy entries per language (exit 1 if any)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
PYBABEL="$PY -m babel.messages.frontend"  # the venv's Babel (no console script needed)
LANGS=(en sr_Latn pl ro vi)  # sr_Cyrl is generated from sr_Latn
KEYWORDS=(-k _l -k lazy_gettext -k N_ -k Nn_:1,2 -k ngettext:1,2 -k lazy_ngettext:1,2 -k _n:1,2)
case "${1:-}" in
  extract)
    $PYBABEL -q extract -F babel.cfg "${KEYWORDS[@]}" --add-comments=Translators: --sort-by-file \
      --no-wrap --add-location=file --project=iam -o "${2:-translations/messages.pot}" . ;;
  update)
    "$0" extract
    for lang in "${LANGS[@]}"; do
      po="translations/$lang/LC_MESSAGES/messages.po"
      if [ -f "$po" ]; then
        $PYBABEL -q update --ignore-obsolete --no-wrap -i translations/messages.pot -d translations -l "$lang"
      else
        $PYBABEL -q init --no-wrap -i translations/messages.pot -d translations -l "$lang"
      fi
    done
    "$PY" deploy/translations.py english translations/en/LC_MESSAGES/messages.po
    "$PY" deploy/sr_cyrl.py translations/sr_Latn/LC_MESSAGES/messages.po translations/sr_Cyrl/LC_MESSAGES/messages.po
    "$0" missing || true ;;
  compile)
    if ! "$PY" -c 'import babel' 2>/dev/null; then  # no Babel in this environment: pages stay English
      echo "warning: Babel is not installed in $VENV; translations not compiled" >&2
      exit 0
    fi
    $PYBABEL -q compile -d translations ;;
  missing)
    "$PY" deploy/translations.py missing translations ;;
  *) echo "usage: deploy/translations.sh update|compile|missing|extract [pot]" >&2; exit 2 ;;
esac
