# Sourced by benches/e2e.sh, remote.sh and postgres.sh, from the repository root, with the script's
# arguments (only --scale is read here, default 1): the virtualenv from benches/requirements.txt and TPC-H Parquet at that scale, both cached
# under target/bench/, and a release build. Sets $venv and $data. `prepare_data=0` skips the data.
scale=1
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    if [[ ${args[i]} == --scale ]]; then scale=${args[i + 1]}; fi
done

bench=target/bench
venv=$bench/venv
stamp=$venv/.requirements.sha256
want=$(sha256sum benches/requirements.txt | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "preparing $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r benches/requirements.txt
    echo "$want" >"$stamp"
fi

data=$bench/data/sf$scale
if [[ ${prepare_data:-1} == 1 && ! -f $data/.complete ]]; then
    echo "generating TPC-H SF $scale into $data" >&2
    rm -rf "$data"
    "$venv/bin/tpchgen-cli" parquet -s "$scale" -c SNAPPY -o "$data"
    touch "$data/.complete"
fi

cargo build --release --locked --workspace
