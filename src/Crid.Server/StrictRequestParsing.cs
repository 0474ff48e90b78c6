using System.Diagnostics.CodeAnalysis;
using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Crid.Server;

/// <summary>
/// Binds the CRI services with request marshallers that turn a payload protobuf cannot parse into
/// InvalidArgument. Grpc.AspNetCore deserializes before any interceptor runs, and answers a parse
/// failure with Unknown "Exception was thrown by handler." (and an Error log line), which tells the
/// caller nothing; a garbage request is the caller's error, so it gets InvalidArgument naming the message.
/// The generated BindService lists every method, so nothing is bound by hand or by reflection.
/// </summary>
internal sealed class StrictRequestParsing<[DynamicallyAccessedMembers(StrictRequestParsingSetup.Members)] TService>(Action<ServiceBinderBase, TService> bind, TService instance) : IServiceMethodProvider<TService>
    where TService : class
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<TService> context) =>
        bind(new Binder(context), instance);

    /// <summary>
    /// Whether the service class overrides the generated base's method (whose body answers
    /// Unimplemented with an empty message). TService keeps its public methods for trimming.
    /// </summary>
    private static bool Implemented(string name) =>
        typeof(TService).GetMethod(name, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)?.DeclaringType == typeof(TService);

    /// <summary>
    /// The answer for a method crid does not serve: it names the method and lists those it does, so
    /// the operator reading kubelet's or crictl's error knows at once what works.
    /// </summary>
    private static RpcException Unimplemented(string service, string method) =>
        new(new Status(StatusCode.Unimplemented,
            $"crid {ServedMethods.Version} does not implement {service}/{method} yet; it serves {ServedMethods.Describe()}"));

    private static Method<TRequest, TResponse> Strict<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class where TResponse : class
    {
        var inner = method.RequestMarshaller;
        var marshaller = Marshallers.Create(inner.ContextualSerializer, context =>
        {
            try
            {
                return inner.ContextualDeserializer(context);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument,
                    $"the request is not a valid {method.ServiceName}.{method.Name} message: {e.Message}"));
            }
        });
        // The list answers are written from their entries' kept bytes (Services.ListAnswers).
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, marshaller, Services.ListAnswers.For(method.ResponseMarshaller));
    }

    /// <summary>
    /// The handlers come bound to the one service instance (a DI singleton), so the per-call service
    /// argument grpc-dotnet passes is that same instance and is not needed.
    /// </summary>
    private sealed class Binder(ServiceMethodProviderContext<TService> context) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
            context.AddUnaryMethod(Strict(method), [], Served(method)
                ? (_, request, call) => handler!(request, call)
                : (_, _, _) => throw Unimplemented(method.ServiceName, method.Name));

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
            context.AddServerStreamingMethod(Strict(method), [], Served(method)
                ? (_, request, stream, call) => handler!(request, stream, call)
                : (_, _, _, _) => throw Unimplemented(method.ServiceName, method.Name));

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
            context.AddClientStreamingMethod(Strict(method), [], Served(method)
                ? (_, requests, call) => handler!(requests, call)
                : (_, _, _) => throw Unimplemented(method.ServiceName, method.Name));

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
            context.AddDuplexStreamingMethod(Strict(method), [], Served(method)
                ? (_, requests, responses, call) => handler!(requests, responses, call)
                : (_, _, _, _) => throw Unimplemented(method.ServiceName, method.Name));

        private static bool Served(IMethod method)
        {
            var served = Implemented(method.Name);
            if (served)
                ServedMethods.Add(method.ServiceName, method.Name);
            return served;
        }
    }
}

/// <summary>The methods the CRI services really serve, as bound at start-up; named by every Unimplemented answer.</summary>
internal static class ServedMethods
{
    private static readonly SortedDictionary<string, SortedSet<string>> Methods = new(StringComparer.Ordinal);

    public static string Version { get; } = Services.RuntimeInfo.ProductVersion.Split('+')[0];

    public static void Add(string service, string method)
    {
        lock (Methods)
        {
            var name = service[(service.LastIndexOf('.') + 1)..];
            if (!Methods.TryGetValue(name, out var set))
                Methods[name] = set = new SortedSet<string>(StringComparer.Ordinal);
            set.Add(method);
        }
    }

    public static string Describe()
    {
        lock (Methods)
            return string.Join("; ", Methods.Select(kv => $"{kv.Key}: {string.Join(", ", kv.Value)}"));
    }
}

internal static class StrictRequestParsingSetup
{
    /// <summary>What grpc-dotnet's own providers require of a service type.</summary>
    internal const DynamicallyAccessedMemberTypes Members =
        DynamicallyAccessedMemberTypes.PublicConstructors | DynamicallyAccessedMemberTypes.PublicMethods | DynamicallyAccessedMemberTypes.NonPublicMethods;

    /// <summary>
    /// Replaces grpc-dotnet's default method provider (which binds with the generated marshallers)
    /// by <see cref="StrictRequestParsing{TService}"/> for the CRI services.
    /// </summary>
    public static IServiceCollection AddStrictRequestParsing<[DynamicallyAccessedMembers(Members)] TService>(this IServiceCollection services, Action<ServiceBinderBase, TService> bind)
        where TService : class
    {
        services.AddSingleton<TService>();
        services.AddSingleton<IServiceMethodProvider<TService>>(sp => new StrictRequestParsing<TService>(bind, sp.GetRequiredService<TService>()));
        return services;
    }

    public static void RemoveDefaultMethodProvider(this IServiceCollection services)
    {
        for (var i = services.Count - 1; i >= 0; i--)
        {
            if (services[i].ServiceType == typeof(IServiceMethodProvider<>))
                services.RemoveAt(i);
        }
    }
}
