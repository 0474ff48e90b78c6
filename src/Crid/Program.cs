namespace Crid; static class Program { static int Main() => 0; }
