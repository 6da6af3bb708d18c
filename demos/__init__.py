"""Interactive demos of duplex-steer (`demos.app`: the Gradio app behind `duplex-steer demo`)."""
