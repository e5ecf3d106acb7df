# Sourced by the other scripts: makes sure .venv exists and holds mr with its test dependencies
# and its s3 extra (for the object store tests), reinstalling when setup.py changed since the last
# install.
venv_dir="${MR_VENV:-.venv}"
if [ ! -x "$venv_dir/bin/python" ]; then
  python3 -m venv "$venv_dir"
fi
stamp="$venv_dir/.mr-installed-$(sha1sum setup.py | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "installing mr and its dependencies into $venv_dir" >&2
  pip_log="$venv_dir/pip-install.log"
  if ! { "$venv_dir/bin/python" -m pip install --upgrade pip &&
         "$venv_dir/bin/python" -m pip install --editable '.[test,s3]'; } >"$pip_log" 2>&1; then
    cat "$pip_log" >&2
    echo "installing mr into $venv_dir failed (log above, kept in $pip_log)" >&2
    exit 1
  fi
  rm -f "$venv_dir"/.mr-installed-*
  touch "$stamp"
fi
