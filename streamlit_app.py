"""Attention Atlas: entrypoint (router + shared sidebar)."""

import streamlit as st

st.set_page_config(page_title="Attention Atlas", layout="wide")
st.title("Attention Atlas")
st.write("The dashboard is under construction; `core` is usable from Python today.")
