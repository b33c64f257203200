"""The app's side of a deployment: settings, policy, memory probing and admission.

`core` is a library: it reads no environment, takes no admission slot and leaves the process's
threads alone. Everything a shared server decides lives here, beside `ui/`:

- `server.settings`: the table of deployment settings and `DeployPolicy`, read from the
  environment and secrets;
- `server.policy`: which models a visitor may load (`load_model_for`) and the per-request budgets;
- `server.memory`: sizes from a config's arithmetic and the machine's available memory;
- `server.admission`: the process-wide admission limit (slots, fair share, torch threads);
- `server.idle`: cyclic garbage collected once no page has run for a while;
- `server.errors`: the typed refusals.

It never imports streamlit: `ui/` reads Streamlit's secrets and passes them in.
"""
