"""What people read, shared by the CLI and the app: wording, labels, safe Markdown/HTML (no Streamlit)."""
