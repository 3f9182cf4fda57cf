# Run (not shown) at the head of every tutorial page: `show(fig)` puts a matplotlib figure into
# the page as a PNG. In a script of your own, use `fig.savefig("name.png")` instead.
import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def show(fig, alt="figure"):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    print(f'<img class="oile-figure" alt="{alt}" src="data:image/png;base64,{data}">')
