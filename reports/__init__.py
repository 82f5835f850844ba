"""numacert.reports (shipped in the wheel; see design.md): pure functions that read a run's
results and render them. No Kubernetes access.

catalogue     the check catalogue (suites/catalogue.yaml) as CheckSpec
results       results.json -> Results, NodeInfo, CheckRecord; read_json (any report JSON file)
policy        policy_token (JUnit classname part) and policy_line (for people)
skips         what a skip reason means for the verdict
verdict       verdict(results, catalogue) -> NodeVerdict per node and policy; exit_code
topology_view the topology summary line and NUMA node rows
comparison    predicted against observed, field by field
junit         rewrite pytest's JUnit (classname/name, strict flavour); junit_filename
markdown      report.md
html          report.html (template report.html.j2); load_template (every .j2 here)
write         write_reports (every file of a run) and summary_table (CLI)
matrix        a policy matrix run: matrix.json -> MatrixVerdict, write_matrix_reports
matrix_junit  every combination's JUnit merged into one file (and its strict flavour)
matrix_render matrix.md and matrix.html (template matrix.html.j2)
"""
