"""The Streamlit side of Attention Atlas: everything the page scripts share.

Each module has one job: `state` (the typed view state and its URL codec, no Streamlit),
`session` (that state in a Streamlit session and the link), `cache` (models and the shared
result store, one key builder), `store` (the byte-bounded store itself), `deploy` (the
deployment policy from the environment and secrets), `runtime` (process tuning and Streamlit
workarounds), `text` (Markdown escaping), `widgets` (controls bound to the view state, charts,
downloads, messages), `matrix` (the heatmap view for inputs of any length), `panels` (the
Attention page's line view, token bars and neuron view), `flow` (flow with progress and Stop),
`sidebar` (the model picker, texts and display options) and `page` (what every page does
first: load the model and the result, then hand the page its state).

Page scripts in `pages/` only lay out what these give them.
"""
