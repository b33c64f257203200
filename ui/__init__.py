"""The Streamlit side of Attention Atlas: everything the page scripts share.

Each module has one job: `state` (the typed view state and its URL codec, no Streamlit),
`session` (that state in a Streamlit session and the link), `cache` (models and the shared
result store, one key builder), `store` (the byte-bounded store itself), `deploy` (the
deployment policy from the environment and secrets), `runtime` (process tuning and Streamlit
workarounds), `text` (Markdown escaping), `widgets` (controls bound to the view state, charts,
downloads, messages), `matrix` (the heatmap view for inputs of any length), `panels` (the
Attention page's controls, line view, token bars, neuron view and exports), `costly` (costly
methods with progress and Stop), `prediction` (the masked page's parts), `compare` (the
Compare page's pickers), `exports` (download data built on click from keys), `sidebar` (the
model picker, texts, display options and view files) and `page` (what every page does first:
load the model and the result, clamp the view, hand the page its state).

Page scripts in `pages/` only lay out what these give them.
"""
