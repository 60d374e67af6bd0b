# Sourced by the scripts that run scripts/e2e.py: `tally < <(python3 scripts/e2e.py ...)`
# echoes a run's output and adds its `MODE: N passed, M failed` line to $passed/$failed.
passed=0
failed=0
tally() {
    local line
    while IFS= read -r line; do
        echo "$line"
        if [[ "$line" =~ ^[a-z0-9-]+:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
            passed=$((passed + BASH_REMATCH[1]))
            failed=$((failed + BASH_REMATCH[2]))
        fi
    done
}
